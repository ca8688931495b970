"""macOS and Windows layouts, written under a fake root (no Mac or Windows here).

Windows registry writes go through the installer's registry interface; under
a fake root that is ``FileRegistry``, which records each write.
"""

from __future__ import annotations

import json
import shlex
from pathlib import PureWindowsPath

import pytest
from installenv import CHROME_ID, FIREFOX_ID, HOST, tree

from cisbridge.host import LAUNCH
from cisbridge.install import installer
from cisbridge.install.system import FileRegistry, System

MAC_USER = {
    "chrome": ["Google/Chrome", "Google/Chrome Beta", "Google/Chrome Dev", "Google/Chrome Canary"],
    "chromium": ["Chromium"],
    "edge": ["Microsoft Edge", "Microsoft Edge Beta", "Microsoft Edge Dev"],
    "brave": ["BraveSoftware/Brave-Browser", "BraveSoftware/Brave-Browser-Beta", "BraveSoftware/Brave-Browser-Nightly"],
    "vivaldi": ["Vivaldi"],
    "firefox": ["Mozilla"],
}
MAC_SYSTEM = {
    "chrome": ["Library/Google/Chrome/NativeMessagingHosts"],
    "chromium": ["Library/Application Support/Chromium/NativeMessagingHosts"],
    "edge": ["Library/Microsoft/Edge/NativeMessagingHosts"],
    "brave": ["Library/Application Support/BraveSoftware/Brave-Browser/NativeMessagingHosts",
              "Library/Google/Chrome/NativeMessagingHosts"],
    "vivaldi": ["Library/Application Support/Vivaldi/NativeMessagingHosts", "Library/Google/Chrome/NativeMessagingHosts"],
    "firefox": ["Library/Application Support/Mozilla/NativeMessagingHosts"],
}
WIN_KEYS = {
    "chrome": ["Software\\Google\\Chrome"],
    "chromium": ["Software\\Chromium"],
    "edge": ["Software\\Microsoft\\Edge"],
    "brave": ["Software\\BraveSoftware\\Brave-Browser", "Software\\Google\\Chrome"],
    "vivaldi": ["Software\\Vivaldi", "Software\\Google\\Chrome"],
    "firefox": ["Software\\Mozilla"],
}
PYTHON = "/opt/cisbridge/bin/python3"


def install(system: System, browsers: list[str]) -> None:
    installer.install(system, installer.Plan(browsers=browsers, ids=installer.default_ids(), python=PYTHON),
                      say=lambda _line: None)


def ids_of(data: dict) -> list[str]:
    return data.get("allowed_extensions") or data["allowed_origins"]


@pytest.mark.parametrize("browser", list(MAC_USER))
def test_macos_user_and_system_locations(tmp_path, browser):
    root = tmp_path / "root"
    user = System("darwin", "user", root=root)
    home = root / "Users" / user.user_name()
    install(user, [browser])
    launcher = f"/Users/{user.user_name()}/Library/Application Support/cisbridge/cisbridge-host"
    for d in MAC_USER[browser]:
        data = json.loads((home / "Library/Application Support" / d / "NativeMessagingHosts" / f"{HOST}.json").read_text())
        assert data["path"] == launcher
        assert ids_of(data) == ([FIREFOX_ID] if browser == "firefox" else [f"chrome-extension://{CHROME_ID}/"])
    assert (root / launcher.lstrip("/")).read_text().endswith(f'exec {PYTHON} -I -c {shlex.quote(LAUNCH)} "$@"\n')

    system = System("darwin", "system", root=root)
    install(system, [browser])
    for d in MAC_SYSTEM[browser]:
        data = json.loads((root / d / f"{HOST}.json").read_text())
        assert data["path"] == "/Library/Application Support/cisbridge/cisbridge-host"
    installer.uninstall(system, None, say=lambda _l: None)
    installer.uninstall(user, None, say=lambda _l: None)
    assert tree(root) == {}


@pytest.mark.parametrize("scope,hive", [("user", "HKCU"), ("system", "HKLM")])
def test_windows_registry_keys_point_at_manifests(tmp_path, scope, hive):
    root = tmp_path / "root"
    registry = FileRegistry(root / "registry.json")
    system = System("win32", scope, root=root, registry=registry)
    install(system, list(WIN_KEYS))
    base = (PureWindowsPath(f"C:\\Users\\{system.user_name()}\\AppData\\Local\\cisbridge") if scope == "user"
            else PureWindowsPath("C:\\Program Files\\cisbridge"))
    chromium_manifest = str(base / f"{HOST}.chromium.json")
    firefox_manifest = str(base / f"{HOST}.firefox.json")
    expected = {}
    for browser, keys in WIN_KEYS.items():
        for key in keys:
            expected[f"{key}\\NativeMessagingHosts\\{HOST}"] = firefox_manifest if browser == "firefox" else chromium_manifest
    sets = {key: value for op, h, key, value in registry.writes if op == "set" and h == hive}
    assert sets == expected
    assert all(h == hive for _op, h, _k, _v in registry.writes)
    # Each key is written once even though Brave and Vivaldi share Chrome's.
    assert len([w for w in registry.writes if w[0] == "set"]) == len(expected)

    chromium = json.loads(system.real(chromium_manifest).read_text())
    firefox = json.loads(system.real(firefox_manifest).read_text())
    assert chromium["allowed_origins"] == [f"chrome-extension://{CHROME_ID}/"]
    assert firefox["allowed_extensions"] == [FIREFOX_ID]
    launcher = str(base / "cisbridge-host.bat")
    assert chromium["path"] == firefox["path"] == launcher
    bat = system.real(launcher).read_bytes()
    assert bat.startswith(b"@echo off\r\n") and f'"{PYTHON}" -I -c "{LAUNCH}" %*\r\n'.encode() in bat

    # Idempotent: a second run changes no key.
    registry.writes.clear()
    install(system, list(WIN_KEYS))
    assert registry.writes == []

    # Brave goes, Chrome's key stays (Chrome and Vivaldi still read it).
    installer.uninstall(system, ["brave"], say=lambda _l: None)
    assert registry.writes == [("delete", hive, f"Software\\BraveSoftware\\Brave-Browser\\NativeMessagingHosts\\{HOST}", None)]
    installer.uninstall(system, None, say=lambda _l: None)
    assert json.loads((root / "registry.json").read_text()) == {}
    assert [p for p in tree(root) if p != "registry.json"] == []


def test_windows_uninstall_leaves_a_key_someone_else_repointed(tmp_path):
    root = tmp_path / "root"
    registry = FileRegistry(root / "registry.json")
    system = System("win32", "user", root=root, registry=registry)
    install(system, ["chrome"])
    key = f"Software\\Google\\Chrome\\NativeMessagingHosts\\{HOST}"
    registry.set("HKCU", key, "D:\\other\\manifest.json")
    installer.uninstall(system, None, say=lambda _l: None)
    assert registry.get("HKCU", key) == "D:\\other\\manifest.json"


def test_windows_launcher_refuses_paths_cmd_would_misread(tmp_path):
    system = System("win32", "user", root=tmp_path / "root", registry=FileRegistry(tmp_path / "reg.json"))
    with pytest.raises(ValueError, match="cmd.exe"):
        installer.install(system, installer.Plan(["chrome"], installer.default_ids(), python="C:\\A&B\\python.exe"),
                          say=lambda _l: None)


def test_cli_writes_windows_layout_under_root(env, tmp_path):
    root = tmp_path / "root"
    env.run("install", "--platform", "win32", "--root", str(root), "--browser", "firefox", "--python", "C:\\Python312\\python.exe")
    reg = json.loads((root / "registry.json").read_text())
    assert reg == {f"HKCU\\Software\\Mozilla\\NativeMessagingHosts\\{HOST}":
                   f"C:\\Users\\{System('win32', 'user', root=root).user_name()}\\AppData\\Local\\cisbridge\\{HOST}.firefox.json"}
    env.run("uninstall", "--platform", "win32", "--root", str(root))
    assert json.loads((root / "registry.json").read_text()) == {}


def test_platform_other_than_this_one_needs_root(env):
    proc = env.run("install", "--platform", "win32", check=False)
    assert proc.returncode != 0 and "--root" in proc.stderr


@pytest.mark.parametrize("platform", ["linux", "win32"])
def test_launcher_names_its_interpreter_even_with_spaces_and_runs_it_isolated(tmp_path, platform):
    system = System(platform, "user", root=tmp_path, registry=FileRegistry(tmp_path / "reg.json"))
    python = "C:\\Program Files\\Python 3.12\\python.exe" if platform == "win32" else "/opt/my tools/it's/python3"
    assert installer.read_launcher(installer.launcher_text(system, python)) == (python, True)


@pytest.mark.parametrize("text, python", [
    # launchers written before -I (and before python -c): still recognised
    (f"#!/bin/sh\nexec /opt/py/bin/python3 -c {shlex.quote(LAUNCH)} \"$@\"\n", "/opt/py/bin/python3"),
    ("#!/bin/sh\nexec '/opt/my py/python3' -m cisbridge host \"$@\"\n", "/opt/my py/python3"),
    (f'@echo off\r\n"C:\\Py\\python.exe" -c "{LAUNCH}" %*\r\n', "C:\\Py\\python.exe"),
    ('@echo off\r\n"C:\\Py\\python.exe" -m cisbridge host %*\r\n', "C:\\Py\\python.exe"),
])
def test_older_launchers_are_still_read(text, python):
    assert installer.read_launcher(text) == (python, False)  # not isolated: doctor warns, install again


def test_a_script_that_is_not_a_launcher_is_not_read_as_one():
    assert installer.read_launcher("echo hello\n") is None
