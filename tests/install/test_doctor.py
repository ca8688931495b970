"""cisbridge doctor: each broken setup is found and the fix named; a good one passes."""

from __future__ import annotations

import json

from installenv import CHROME_ID, FIREFOX_ID, HOST, failures

CHROMIUM_MANIFEST = ".config/chromium/NativeMessagingHosts/" + HOST + ".json"


def only(checks, prefix, status=None):
    found = [c for c in checks if c["check"].startswith(prefix) and (status is None or c["status"] == status)]
    assert found, f"no {status or ''} check starting {prefix!r} in {json.dumps(checks, indent=1)}"
    return found


def edit_manifest(env, **changes):
    path = env.home / CHROMIUM_MANIFEST
    data = json.loads(path.read_text())
    data.update(changes)
    path.write_text(json.dumps(data))


def test_good_install_passes_and_the_self_test_talks_to_the_host(env):
    env.run("install", "--browser", "chromium", "--browser", "firefox")
    code, checks = env.doctor("--browser", "chromium", "--browser", "firefox")
    for label in ("Chromium manifest (user)", "Firefox manifest (user)", "config", "allowed origins"):
        assert all(c["status"] == "ok" for c in only(checks, label)), label
    chromium = only(checks, "self-test (Chromium)", "ok")[0]
    firefox = only(checks, "self-test (Firefox)", "ok")[0]
    assert chromium["detail"]["status"]["protocol"] == 1 and "getStatus" in chromium["message"]
    # Started exactly as each browser starts it.
    assert chromium["detail"]["argv"] == [str(env.launcher), f"chrome-extension://{CHROME_ID}/"]
    assert firefox["detail"]["argv"] == [str(env.launcher), str(env.home / ".mozilla/native-messaging-hosts" / f"{HOST}.json"), FIREFOX_ID]
    # Whatever fails on this machine is outside the installation (no pcscd here).
    assert {c["check"] for c in failures(checks)} <= {"PC/SC"}


def test_text_output_has_a_line_per_check_and_fixes(env):
    proc = env.run("doctor", "--browser", "chromium", "--no-self-test", check=False)
    assert proc.returncode == 1
    lines = proc.stdout.splitlines()
    assert any(line.startswith("✗ Chromium manifest: not found") for line in lines)
    assert any(line.strip().startswith("fix: run `cisbridge install --browser chromium`") for line in lines)
    assert any(line.startswith("✓ config: valid") for line in lines)


def test_missing_manifest(env):
    code, checks = env.doctor("--browser", "chromium")
    assert code == 1
    check = only(checks, "Chromium manifest", "fail")[0]
    assert "Specified native messaging host not found." in check["message"]
    assert "cisbridge install --browser chromium" in check["fix"]
    assert str(env.home / CHROMIUM_MANIFEST) in check["detail"]["looked"]


def test_recorded_manifest_deleted(env):
    env.run("install", "--browser", "chromium")
    (env.home / CHROMIUM_MANIFEST).unlink()
    code, checks = env.doctor("--no-self-test")
    assert code == 1
    assert "is gone" in only(checks, "install record", "fail")[0]["message"]
    # Browsers come from the install record when --browser is not given.
    assert only(checks, "Chromium manifest", "fail")


def test_relative_path(env):
    env.run("install", "--browser", "chromium")
    edit_manifest(env, path="cisbridge-host")
    code, checks = env.doctor("--browser", "chromium")
    check = only(checks, "Chromium manifest (user)", "fail")[0]
    assert "relative" in check["message"] and "cisbridge install" in check["fix"]
    assert only(checks, "self-test", "skip")


def test_non_executable_launcher(env):
    env.run("install", "--browser", "chromium")
    env.launcher.chmod(0o644)
    code, checks = env.doctor("--browser", "chromium")
    check = only(checks, "Chromium manifest (user)", "fail")[0]
    assert "not executable" in check["message"] and "Native host has exited." in check["message"]
    assert f"chmod 755 '{env.launcher}'" in check["fix"]


def test_missing_launcher(env):
    env.run("install", "--browser", "chromium")
    env.launcher.unlink()
    code, checks = env.doctor("--browser", "chromium")
    assert "does not exist" in only(checks, "Chromium manifest (user)", "fail")[0]["message"]


def test_launcher_python_gone(env, tmp_path):
    env.run("install", "--browser", "chromium", "--python", str(tmp_path / "old-venv/bin/python"))
    code, checks = env.doctor("--browser", "chromium")
    check = only(checks, "Chromium manifest (user)", "fail")[0]
    assert "no longer exists" in check["message"] and "with the Python that has cisbridge" in check["fix"]
    env.run("install", "--browser", "chromium")  # repairs
    code, checks = env.doctor("--browser", "chromium")
    assert only(checks, "self-test (Chromium)", "ok")


def test_launcher_without_isolated_mode_is_a_warning_and_install_repairs_it(env):
    env.run("install", "--browser", "chromium")
    env.launcher.write_text(env.launcher.read_text().replace(" -I -c ", " -c "))
    code, checks = env.doctor("--browser", "chromium")
    warning = only(checks, "Chromium manifest (user)", "warn")[0]
    assert "without -I" in warning["message"] and "cisbridge install" in warning["fix"]
    assert only(checks, "self-test (Chromium)", "ok")  # it still works
    env.run("install", "--browser", "chromium")
    code, checks = env.doctor("--browser", "chromium")
    assert not [c for c in checks if c["status"] == "warn" and c["check"].startswith("Chromium manifest")]


def test_bad_json(env):
    env.run("install", "--browser", "chromium")
    (env.home / CHROMIUM_MANIFEST).write_text('{"name": "org.cisbridge.host",')
    code, checks = env.doctor("--browser", "chromium")
    check = only(checks, "Chromium manifest (user)", "fail")[0]
    assert "not valid JSON" in check["message"] and "cisbridge install" in check["fix"]


def test_wrong_name(env):
    env.run("install", "--browser", "chromium")
    edit_manifest(env, name="org.cisbridge.Host")
    code, checks = env.doctor("--browser", "chromium")
    assert "not 'org.cisbridge.host'" in only(checks, "Chromium manifest (user)", "fail")[0]["message"]


def test_wrong_extension_id(env):
    env.run("install", "--browser", "chromium")
    edit_manifest(env, allowed_origins=["chrome-extension://" + "a" * 32 + "/"])
    code, checks = env.doctor("--browser", "chromium")
    check = only(checks, "Chromium manifest (user)", "fail")[0]
    assert "Access to the specified native messaging host is forbidden." in check["message"]
    assert "cisbridge install" in check["fix"]


def test_malformed_origin_entry(env):
    env.run("install", "--browser", "chromium")
    edit_manifest(env, allowed_origins=[f"chrome-extension://{CHROME_ID}"])  # no trailing slash
    code, checks = env.doctor("--browser", "chromium")
    assert "is not chrome-extension://" in only(checks, "Chromium manifest (user)", "fail")[0]["message"]


def test_manifest_allows_an_extension_the_host_refuses(env):
    env.run("install", "--browser", "chromium")
    stranger = "b" * 32
    edit_manifest(env, allowed_origins=[f"chrome-extension://{CHROME_ID}/", f"chrome-extension://{stranger}/"])
    code, checks = env.doctor("--browser", "chromium")
    check = only(checks, "Chromium manifest (user)", "fail")[0]
    assert stranger in check["message"] and "allowed_extensions" in check["fix"]


def test_config_drops_the_extension_the_manifest_names(env):
    env.run("install", "--browser", "chromium")
    env.config.write_text('allowed_origins = ["https://ehr.example.nhs.uk"]\nallowed_extensions = ["cisbridge@cisbridge.org"]\n')
    code, checks = env.doctor("--browser", "chromium")
    assert "forbidden" in only(checks, "Chromium manifest (user)", "fail")[0]["message"]


def test_invalid_config(env):
    env.run("install", "--browser", "chromium")
    env.config.write_text('allowed_origin = ["https://ehr.example.nhs.uk"]\n')
    code, checks = env.doctor("--browser", "chromium")
    assert code == 1
    check = only(checks, "config", "fail")[0]
    assert check["detail"] == {"file": str(env.config), "key": "allowed_origin"}
    assert f"edit {env.config}, key allowed_origin" in check["fix"]
    assert only(checks, "agent", "skip")


def test_empty_allowlist(env):
    env.config.write_text("")
    code, checks = env.doctor("--browser", "chromium", "--no-self-test")
    check = only(checks, "allowed origins", "fail")[0]
    assert "empty" in check["message"] and "allowed_origins" in check["fix"]


def test_loopback_http_origin_is_a_warning(env):
    env.config.write_text('allowed_origins = ["http://127.0.0.1:8080"]\n')
    code, checks = env.doctor("--browser", "chromium", "--no-self-test")
    assert "http://127.0.0.1:8080" in only(checks, "allowed origins", "warn")[0]["message"]


def test_missing_pkcs11_module(env, tmp_path):
    missing = tmp_path / "no-such-pkcs11.so"
    env.config.write_text(f'allowed_origins = ["https://ehr.example.nhs.uk"]\n[pkcs11]\nmodule = "{missing}"\n')
    code, checks = env.doctor("--browser", "chromium", "--no-self-test")
    check = only(checks, "PKCS#11", "fail")[0]
    assert str(missing) in check["message"] and "[pkcs11] module" in check["fix"]


def test_pkcs11_module_that_is_not_a_library(env, tmp_path):
    bogus = tmp_path / "bogus.so"
    bogus.write_text("not a shared object")
    env.config.write_text(f'allowed_origins = ["https://ehr.example.nhs.uk"]\n[pkcs11]\nmodule = "{bogus}"\n')
    code, checks = env.doctor("--browser", "chromium", "--no-self-test")
    assert "could not be loaded" in only(checks, "PKCS#11", "fail")[0]["message"]


def test_host_that_exits_at_once(env):
    env.run("install", "--browser", "chromium")
    env.launcher.write_text("#!/bin/sh\necho 'cisbridge: broken install' >&2\nexit 3\n")
    code, checks = env.doctor("--browser", "chromium")
    check = only(checks, "self-test (Chromium)", "fail")[0]
    assert "Native host has exited." in check["message"] and "exit status 3" in check["message"]


def test_silent_host_fails_within_the_bound(env):
    env.run("install", "--browser", "chromium")
    env.launcher.write_text("#!/bin/sh\nexec sleep 30\n")
    code, checks = env.doctor("--browser", "chromium")
    assert "no ready message" in only(checks, "self-test (Chromium)", "fail")[0]["message"]


def test_snap_and_flatpak_browsers_are_reported_with_the_workaround(env, tmp_path):
    root = tmp_path / "root"
    (root / "snap/bin").mkdir(parents=True)
    (root / "snap/bin/chromium").write_text("")
    (root / "var/lib/flatpak/app/org.mozilla.firefox").mkdir(parents=True)
    code, checks = env.doctor("--root", str(root), "--browser", "chromium")
    snap = only(checks, "Chromium (snap)", "warn")[0]
    flatpak = only(checks, "Firefox (flatpak)", "warn")[0]
    assert "deb" in snap["fix"] and "Snap and Flatpak" in flatpak["fix"]


def test_doctor_checks_windows_layout_through_the_registry(env, tmp_path):
    root = tmp_path / "root"
    env.run("install", "--platform", "win32", "--root", str(root), "--browser", "chrome")
    code, checks = env.doctor("--platform", "win32", "--root", str(root), "--browser", "chrome")
    ok = only(checks, "Google Chrome manifest (user)", "ok")[0]
    assert ok["message"].startswith("C:\\Users\\")
    registry = root / "registry.json"
    data = json.loads(registry.read_text())
    data = {k: v.replace("chromium.json", "missing.json") for k, v in data.items()}
    registry.write_text(json.dumps(data))
    code, checks = env.doctor("--platform", "win32", "--root", str(root), "--browser", "chrome")
    assert only(checks, "Google Chrome manifest", "fail")


def test_doctor_checks_macos_system_layout(env, tmp_path):
    root = tmp_path / "root"
    env.run("install", "--platform", "darwin", "--system", "--root", str(root), "--browser", "edge")
    code, checks = env.doctor("--platform", "darwin", "--root", str(root), "--browser", "edge")
    ok = only(checks, "Microsoft Edge manifest (system)", "ok")[0]
    assert "/Library/Microsoft/Edge/NativeMessagingHosts/" in ok["message"]


def test_recorded_registry_key_removed(env, tmp_path):
    root = tmp_path / "root"
    env.run("install", "--platform", "win32", "--root", str(root), "--browser", "edge")
    (root / "registry.json").write_text("{}")
    code, checks = env.doctor("--platform", "win32", "--root", str(root), "--browser", "edge")
    check = only(checks, "install record", "fail")[0]
    assert "HKCU\\Software\\Microsoft\\Edge\\NativeMessagingHosts\\org.cisbridge.host is gone" in check["message"]
    assert only(checks, "Microsoft Edge manifest", "fail")
