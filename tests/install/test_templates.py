"""manifests/: rendered from cisbridge.install.manifests, and well-formed for each consumer."""

from __future__ import annotations

import json
import plistlib
import subprocess
import sys

from installenv import CHROME_ID, FIREFOX_ID, HOST, REPO

from cisbridge.install import manifests

MANIFESTS = REPO / "manifests"


def test_committed_files_match_the_source():
    for name, content in manifests.templates().items():
        assert (MANIFESTS / name).read_bytes() == content, f"manifests/{name} is stale: run manifests/generate.py"


def test_firefox_manifest_is_derived_from_the_chromium_one():
    chromium = json.loads((MANIFESTS / "host/org.cisbridge.host.chromium.json").read_text())
    firefox = json.loads((MANIFESTS / "host/org.cisbridge.host.firefox.json").read_text())
    assert chromium.pop("allowed_origins") == [f"chrome-extension://{CHROME_ID}/"]
    assert firefox.pop("allowed_extensions") == [FIREFOX_ID]
    assert chromium == firefox and chromium["name"] == HOST and chromium["type"] == "stdio"


def test_policies_carry_force_install_and_managed_origins():
    chrome = json.loads((MANIFESTS / "policy/linux/chrome/cisbridge.json").read_text())
    assert chrome["ExtensionSettings"][CHROME_ID]["installation_mode"] == "force_installed"
    assert chrome["ExtensionInstallForcelist"] == [f"{CHROME_ID};{manifests.EXAMPLE_UPDATE_URL}"]
    assert chrome["3rdparty"]["extensions"][CHROME_ID] == {manifests.MANAGED_ORIGINS_KEY: [manifests.EXAMPLE_ORIGIN]}
    firefox = json.loads((MANIFESTS / "policy/firefox/policies.json").read_text())["policies"]
    assert firefox["ExtensionSettings"][FIREFOX_ID]["installation_mode"] == "force_installed"
    assert firefox["3rdparty"]["Extensions"][FIREFOX_ID] == {manifests.MANAGED_ORIGINS_KEY: [manifests.EXAMPLE_ORIGIN]}


def test_managed_key_matches_the_extension_schema_when_present():
    schema = REPO / "extension" / "managed_schema.json"
    if schema.exists():
        props = json.loads(schema.read_text())["properties"]
        assert manifests.MANAGED_ORIGINS_KEY in props and props[manifests.MANAGED_ORIGINS_KEY]["type"] == "array"


def test_mobileconfig_is_a_profile_with_the_extension_domain():
    profile = plistlib.loads((MANIFESTS / "policy/macos/cisbridge.mobileconfig").read_bytes())
    assert profile["PayloadType"] == "Configuration"
    types = {p["PayloadType"]: p for p in profile["PayloadContent"]}
    ext = types[f"com.google.Chrome.extensions.{CHROME_ID}"]
    assert ext[manifests.MANAGED_ORIGINS_KEY] == [manifests.EXAMPLE_ORIGIN]
    assert types["com.microsoft.Edge"]["ExtensionSettings"][CHROME_ID]["installation_mode"] == "force_installed"
    uuids = [p["PayloadUUID"] for p in [profile, *profile["PayloadContent"]]]
    assert len(set(uuids)) == len(uuids)


def test_reg_file_is_utf16_with_list_subkeys():
    raw = (MANIFESTS / "policy/windows/cisbridge-chrome-edge.reg").read_bytes()
    assert raw.startswith(b"\xff\xfe")
    text = raw[2:].decode("utf-16-le")
    assert text.startswith("Windows Registry Editor Version 5.00\r\n")
    for vendor in ("Google\\Chrome", "Microsoft\\Edge"):
        key = f"[HKEY_LOCAL_MACHINE\\SOFTWARE\\Policies\\{vendor}\\3rdparty\\extensions\\{CHROME_ID}\\policy\\allowedOrigins]"
        assert f'{key}\r\n"1"="{manifests.EXAMPLE_ORIGIN}"' in text
    # ExtensionSettings is JSON in a string value; it must survive .reg escaping.
    line = next(x for x in text.splitlines() if x.startswith('"ExtensionSettings"='))
    value = line.split("=", 1)[1][1:-1].replace('\\"', '"').replace("\\\\", "\\")
    assert json.loads(value)[CHROME_ID]["installation_mode"] == "force_installed"


def test_generate_renders_a_trusts_own_values(tmp_path):
    subprocess.run([sys.executable, str(MANIFESTS / "generate.py"), "--out", str(tmp_path), "--chrome-id", "d" * 32,
                    "--origin", "https://ehr.trust.nhs.uk", "--origin", "https://pas.trust.nhs.uk"],
                   check=True, capture_output=True)
    chrome = json.loads((tmp_path / "policy/linux/chrome/cisbridge.json").read_text())
    assert chrome["3rdparty"]["extensions"]["d" * 32][manifests.MANAGED_ORIGINS_KEY] == [
        "https://ehr.trust.nhs.uk", "https://pas.trust.nhs.uk"]
