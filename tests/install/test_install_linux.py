"""cisbridge install / uninstall on Linux: a private HOME, and a fake root for --system."""

from __future__ import annotations

import json
import os
import stat
import subprocess
from pathlib import Path

import pytest
import installenv
from installenv import CHROME_ID, FIREFOX_ID, HOST, tree

USER_DIRS = {
    "chrome": [".config/google-chrome/NativeMessagingHosts", ".config/google-chrome-beta/NativeMessagingHosts",
               ".config/google-chrome-unstable/NativeMessagingHosts"],
    "chromium": [".config/chromium/NativeMessagingHosts"],
    "edge": [".config/microsoft-edge/NativeMessagingHosts", ".config/microsoft-edge-beta/NativeMessagingHosts",
             ".config/microsoft-edge-dev/NativeMessagingHosts"],
    "brave": [".config/BraveSoftware/Brave-Browser/NativeMessagingHosts",
              ".config/BraveSoftware/Brave-Browser-Beta/NativeMessagingHosts",
              ".config/BraveSoftware/Brave-Browser-Nightly/NativeMessagingHosts"],
    "vivaldi": [".config/vivaldi/NativeMessagingHosts", ".config/vivaldi-snapshot/NativeMessagingHosts"],
    "firefox": [".mozilla/native-messaging-hosts"],
}
SYSTEM_DIRS = {
    "chrome": ["etc/opt/chrome/native-messaging-hosts"],
    "chromium": ["etc/chromium/native-messaging-hosts"],
    "edge": ["etc/opt/edge/native-messaging-hosts"],
    "brave": ["etc/opt/chrome/native-messaging-hosts", "etc/chromium/native-messaging-hosts"],
    "vivaldi": ["etc/opt/vivaldi/native-messaging-hosts", "etc/opt/chrome/native-messaging-hosts"],
    "firefox": ["usr/lib/mozilla/native-messaging-hosts"],
}


def check_manifest(path, browser, launcher):
    data = json.loads(path.read_text())
    assert data["name"] == HOST and data["type"] == "stdio"
    assert data["path"] == str(launcher) and os.path.isabs(data["path"])
    if browser == "firefox":
        assert data["allowed_extensions"] == [FIREFOX_ID] and "allowed_origins" not in data
    else:
        assert data["allowed_origins"] == [f"chrome-extension://{CHROME_ID}/"] and "allowed_extensions" not in data


@pytest.mark.parametrize("browser", list(USER_DIRS))
def test_user_install_writes_every_location_and_uninstall_restores_home(env, browser):
    before = tree(env.home)
    env.run("install", "--browser", browser)
    for d in USER_DIRS[browser]:
        check_manifest(env.home / d / f"{HOST}.json", browser, env.launcher)
    mode = env.launcher.stat().st_mode
    assert mode & stat.S_IXUSR and stat.S_IMODE(mode) == 0o755
    other = [d for b, dirs in USER_DIRS.items() if b != browser for d in dirs if d not in USER_DIRS[browser]]
    assert not any((env.home / d).exists() for d in other), "only the chosen browser's locations are written"
    env.run("uninstall")
    assert tree(env.home) == before


def test_launcher_starts_the_host_with_this_interpreter(env):
    env.run("install", "--browser", "chromium")
    text = env.launcher.read_text()
    assert text.startswith("#!/bin/sh\n") and "-c 'from cisbridge.host import run; run()' \"$@\"" in text
    # Run it as the browser would: it must speak native messaging.
    proc = subprocess.run([str(env.launcher), f"chrome-extension://{CHROME_ID}/"], input=b"",
                          capture_output=True, env=env.vars, timeout=10)
    size = int.from_bytes(proc.stdout[:4], "little")
    ready = json.loads(proc.stdout[4:4 + size])
    assert ready["event"] == "ready" and ready["data"]["allowedOrigins"] == ["https://ehr.example.nhs.uk"]


def test_install_is_idempotent_and_repairs(env):
    env.run("install", "--browser", "chrome", "--browser", "firefox")
    first = tree(env.home)
    second = env.run("install", "--browser", "chrome", "--browser", "firefox")
    assert "wrote" not in second.stdout and "kept" in second.stdout
    assert tree(env.home) == first
    # Damage: a stale path, a launcher made non-executable, a deleted manifest.
    manifest = env.home / ".config/google-chrome/NativeMessagingHosts" / f"{HOST}.json"
    manifest.write_text(json.dumps({**json.loads(manifest.read_text()), "path": "/old/python/cisbridge-host"}))
    env.launcher.chmod(0o644)
    (env.home / ".mozilla/native-messaging-hosts" / f"{HOST}.json").unlink()
    env.run("install", "--browser", "chrome", "--browser", "firefox")
    assert tree(env.home) == first
    assert stat.S_IMODE(env.launcher.stat().st_mode) == 0o755


def test_uninstall_one_browser_keeps_the_others(env):
    env.run("install", "--browser", "chromium", "--browser", "firefox")
    env.run("uninstall", "--browser", "firefox")
    assert not (env.home / ".mozilla").exists(), "directories install made are removed once empty"
    assert (env.home / ".config/chromium/NativeMessagingHosts" / f"{HOST}.json").exists()
    assert env.launcher.exists() and env.state.exists()
    env.run("uninstall", "--browser", "chromium")
    assert not env.launcher.exists() and not env.state.exists()


def test_uninstall_removes_only_what_install_wrote(env):
    # Someone else's manifest and file in the same directories stay.
    theirs = env.home / ".config/chromium/NativeMessagingHosts/com.example.other.json"
    theirs.parent.mkdir(parents=True)
    theirs.write_text("{}")
    env.run("install", "--browser", "chromium")
    env.run("uninstall")
    assert theirs.read_text() == "{}"
    assert not (theirs.parent / f"{HOST}.json").exists()


def test_uninstall_without_install_says_so(env):
    out = env.run("uninstall").stdout
    assert "nothing to remove" in out


def test_profile_dir_installs_into_that_profile_only(env, tmp_path):
    profile = tmp_path / "profile"
    env.run("install", "--browser", "chromium", "--profile-dir", str(profile))
    check_manifest(profile / "NativeMessagingHosts" / f"{HOST}.json", "chromium", env.launcher)
    assert not (env.home / ".config/chromium").exists()
    proc = env.run("install", "--browser", "firefox", "--profile-dir", str(profile), check=False)
    assert proc.returncode == 2 and "Chromium-family" in proc.stderr
    env.run("uninstall", "--profile-dir", str(profile))
    assert not (profile / "NativeMessagingHosts").exists() and not env.launcher.exists()


@pytest.mark.parametrize("browser", list(SYSTEM_DIRS))
def test_system_install_under_a_fake_root(env, tmp_path, browser):
    root = tmp_path / "root"
    root.mkdir()
    env.run("install", "--system", "--browser", browser, "--root", str(root))
    launcher = "/usr/local/lib/cisbridge/cisbridge-host"
    for d in SYSTEM_DIRS[browser]:
        check_manifest(root / d / f"{HOST}.json", browser, launcher)
    assert os.access(root / launcher.lstrip("/"), os.X_OK)
    assert (root / "var/lib/cisbridge/install-state.json").exists()
    assert tree(env.home) == {}, "a system install writes nothing in HOME"
    env.run("uninstall", "--system", "--root", str(root))
    assert tree(root) == {}


def test_system_firefox_also_uses_lib64_where_it_exists(env, tmp_path):
    root = tmp_path / "root"
    (root / "usr/lib64").mkdir(parents=True)
    env.run("install", "--system", "--browser", "firefox", "--root", str(root))
    assert (root / "usr/lib64/mozilla/native-messaging-hosts" / f"{HOST}.json").exists()
    assert (root / "usr/lib/mozilla/native-messaging-hosts" / f"{HOST}.json").exists()


def test_shared_system_directory_stays_until_its_last_browser_goes(env, tmp_path):
    root = tmp_path / "root"
    root.mkdir()
    shared = root / "etc/opt/chrome/native-messaging-hosts" / f"{HOST}.json"
    env.run("install", "--system", "--browser", "chrome", "--browser", "brave", "--root", str(root))
    env.run("uninstall", "--system", "--browser", "chrome", "--root", str(root))
    assert shared.exists(), "Brave also reads Chrome's system directory"
    env.run("uninstall", "--system", "--browser", "brave", "--root", str(root))
    assert not shared.exists() and tree(root) == {}


def test_all_browsers_user_install_and_uninstall(env):
    before = tree(env.home)
    env.run("install")
    for browser, dirs in USER_DIRS.items():
        for d in dirs:
            check_manifest(env.home / d / f"{HOST}.json", browser, env.launcher)
    env.run("uninstall")
    assert tree(env.home) == before


def test_launcher_quotes_an_interpreter_path_with_spaces_and_quotes(env, tmp_path):
    import venv

    from installenv import REPO

    home = tmp_path / "it's a venv"
    venv.EnvBuilder(with_pip=False).create(home)
    python = home / "bin" / "python"
    import sysconfig

    # That venv has no cisbridge of its own: lend it this one's, the way an
    # installed package is found (launchers run python -I: no PYTHONPATH).
    site = subprocess.run([str(python), "-I", "-c", "import sysconfig; print(sysconfig.get_paths()['purelib'])"],
                          capture_output=True, text=True, check=True).stdout.strip()
    Path(site, "lent.pth").write_text(f"{REPO / 'host'}\n{sysconfig.get_paths()['purelib']}\n{sysconfig.get_paths()['platlib']}\n")
    install = env.run("install", "--browser", "chromium", "--python", str(python))
    assert "warning" not in install.stdout
    code, checks = env.doctor("--browser", "chromium")
    ok = [c for c in checks if c["check"] == "self-test (Chromium)" and c["status"] == "ok"]
    assert ok, [c["message"] for c in checks if c["check"].startswith(("self-test", "Chromium"))]


def test_the_launcher_takes_no_module_from_the_browsers_directory_or_pythonpath(env, tmp_path):
    """Launchers run python -I: a struct.py where the browser happens to be, or
    a PYTHONPATH in its environment, cannot put code into the host."""
    env.run("install", "--browser", "chromium")
    marker = tmp_path / "trap-ran"
    here, elsewhere = tmp_path / "downloads", tmp_path / "pythonpath"
    trap = f"open({str(marker)!r}, 'a').write(__name__ + ' ')\nfrom _struct import *\nfrom _struct import _clearcache\n"
    (here / "cisbridge").mkdir(parents=True)
    (here / "struct.py").write_text(trap)
    (here / "cisbridge" / "__init__.py").write_text(trap)
    (elsewhere / "cisbridge").mkdir(parents=True)
    (elsewhere / "cisbridge" / "__init__.py").write_text(trap)
    run_env = {**env.vars, "PYTHONPATH": str(elsewhere)}

    def start(argv):
        done = subprocess.run(argv, input=b"", capture_output=True, cwd=here, env=run_env, timeout=30)
        return done.stdout[4:].startswith(b'{"event":"ready"')

    assert start([str(env.launcher), f"chrome-extension://{CHROME_ID}/"])
    assert not marker.exists()
    # The same command without -I: the trap runs (the test can see it).
    python = installenv.checkout_python()
    start([python, "-c", "import struct"])
    assert marker.read_text() == "struct "
