"""--extension-id: the manifests and the host's allowed_extensions stay in step."""

from __future__ import annotations

import json
import tomllib

from installenv import CHROME_ID, FIREFOX_ID, HOST

TRUST_ID = "c" * 32


def test_extension_id_goes_into_the_manifest_and_the_config(env):
    env.run("install", "--browser", "chromium", "--extension-id", TRUST_ID)
    manifest = json.loads((env.home / ".config/chromium/NativeMessagingHosts" / f"{HOST}.json").read_text())
    assert manifest["allowed_origins"] == [f"chrome-extension://{CHROME_ID}/", f"chrome-extension://{TRUST_ID}/"]
    config = tomllib.loads(env.config.read_text())
    assert config["allowed_extensions"] == [CHROME_ID, FIREFOX_ID, TRUST_ID]
    assert config["allowed_origins"] == ["https://ehr.example.nhs.uk"], "the rest of the file is kept"
    code, checks = env.doctor("--browser", "chromium")
    assert [c["status"] for c in checks if c["check"] == "Chromium manifest (user)"] == ["ok"]
    # A re-run without the option keeps the id: it now comes from the config.
    env.run("install", "--browser", "chromium")
    again = json.loads((env.home / ".config/chromium/NativeMessagingHosts" / f"{HOST}.json").read_text())
    assert again == manifest


def test_firefox_extension_id(env):
    env.run("install", "--browser", "firefox", "--extension-id", "trust-cisbridge@example.nhs.uk")
    manifest = json.loads((env.home / ".mozilla/native-messaging-hosts" / f"{HOST}.json").read_text())
    assert manifest["allowed_extensions"] == [FIREFOX_ID, "trust-cisbridge@example.nhs.uk"]


def test_config_that_sets_the_list_is_not_rewritten(env):
    original = 'allowed_origins = ["https://ehr.example.nhs.uk"]\nallowed_extensions = ["%s"]\n' % CHROME_ID
    env.config.write_text(original)
    proc = env.run("install", "--browser", "chromium", "--extension-id", TRUST_ID, check=False)
    assert proc.returncode == 1
    assert f'allowed_extensions = ["{CHROME_ID}", "{TRUST_ID}"]' in proc.stdout
    assert env.config.read_text() == original
    # The manifest names only what the host accepts.
    manifest = json.loads((env.home / ".config/chromium/NativeMessagingHosts" / f"{HOST}.json").read_text())
    assert manifest["allowed_origins"] == [f"chrome-extension://{CHROME_ID}/"]


def test_config_file_with_tables_gets_the_key_at_the_top(env):
    env.config.write_text('allowed_origins = ["https://ehr.example.nhs.uk"]\n\n[logging]\nlevel = "debug"\n')
    env.run("install", "--browser", "chromium", "--extension-id", f"chrome-extension://{TRUST_ID}/")
    config = tomllib.loads(env.config.read_text())
    assert TRUST_ID in config["allowed_extensions"] and config["logging"]["level"] == "debug"


def test_bad_extension_id_is_refused(env):
    proc = env.run("install", "--extension-id", "not an id", check=False)
    assert proc.returncode == 2 and "not an extension id" in proc.stderr
    assert not env.launcher.exists()


def test_manifest_ids_follow_a_narrowed_config(env):
    env.config.write_text('allowed_origins = ["https://ehr.example.nhs.uk"]\nallowed_extensions = ["%s"]\n' % TRUST_ID)
    env.run("install", "--browser", "chromium")
    manifest = json.loads((env.home / ".config/chromium/NativeMessagingHosts" / f"{HOST}.json").read_text())
    assert manifest["allowed_origins"] == [f"chrome-extension://{TRUST_ID}/"]
