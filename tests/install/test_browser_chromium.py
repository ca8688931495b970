"""A real headless Chromium finds the host that `cisbridge install --profile-dir` registered.

Nothing is hand-written here: the launcher and the manifest are the
installer's, in the profile's own NativeMessagingHosts/ (TESTBED.md), and the
page reaches the host through the built extension (extension/dist).
"""

from __future__ import annotations

import os
import shutil
import signal
import subprocess
import sys
import time

import pytest
from installenv import CDP_HELPERS, CHROME_ID, DIST, HOST

pytestmark = pytest.mark.browser



def _requirements() -> str | None:
    """What is missing to run this test, or None."""
    if not (DIST / "manifest.json").is_file():
        return "extension/dist is not built: run scripts/setup (it builds the extension)"
    if not (CDP_HELPERS / "cdp.py").is_file():
        return "tests/browser/cdp.py (the DevTools client) is missing"
    try:
        import websockets  # noqa: F401
    except ImportError:
        return "the websockets package (test extra) is not installed: run scripts/setup"
    if not (shutil.which("chromium") or os.path.exists("/usr/bin/chromium")):
        return "chromium is not installed"
    return None


def test_installed_host_answers_get_status_from_a_page(env, site, tmp_path):
    missing = _requirements()
    if missing:
        pytest.fail(missing)  # scripts/setup provides all of it: a missing part is a broken setup
    sys.path.insert(0, str(CDP_HELPERS))
    from cdp import CDP, Page

    env.config.write_text(f'allowed_origins = ["{site}"]\n')
    profile = tmp_path / "profile"
    env.run("install", "--browser", "chromium", "--profile-dir", str(profile))
    assert (profile / "NativeMessagingHosts" / f"{HOST}.json").is_file()

    chromium = shutil.which("chromium") or "/usr/bin/chromium"
    log = open(tmp_path / "chromium.log", "wb")
    proc = subprocess.Popen(
        [chromium, "--headless=new", "--no-sandbox", f"--user-data-dir={profile}",
         f"--load-extension={DIST}", f"--disable-extensions-except={DIST}",
         "--disable-background-networking", "--disable-component-update", "--disable-sync",
         "--no-first-run", "--no-default-browser-check", "--disable-quic", "--disable-gpu",
         "--remote-debugging-port=0", "about:blank"],
        stdout=subprocess.DEVNULL, stderr=log, env=env.vars, start_new_session=True,
    )
    cdp = None
    try:
        port_file = profile / "DevToolsActivePort"
        deadline = time.monotonic() + 30
        while not (port_file.is_file() and len(port_file.read_text().splitlines()) >= 2):
            assert proc.poll() is None and time.monotonic() < deadline, "chromium did not start"
            time.sleep(0.05)
        port, path = port_file.read_text().splitlines()[:2]
        cdp = CDP(f"ws://127.0.0.1:{port}{path}")
        page = Page(cdp, site + "/")
        outcome = page.evaluate(
            "(async () => { for (let i = 0; i < 100 && !window.cisAuth; i++) await new Promise(r => setTimeout(r, 50));"
            " try { return {ok: true, value: await window.cisAuth.getStatus()}; }"
            " catch (e) { return {ok: false, code: e.code, message: e.message}; } })()"
        )
        assert outcome["ok"], outcome
        from cisbridge import __version__

        assert outcome["value"]["host"] == __version__ and outcome["value"]["protocol"] == 1
        # The host the browser started is the installer's launcher: its log names the caller.
        host_log = "".join(p.read_text() for p in (tmp_path / "log").glob("*.log*"))
        assert f"started by {CHROME_ID}" in host_log
    finally:
        if cdp is not None:
            try:
                cdp.send("Browser.close", timeout=5)
            except Exception:  # noqa: BLE001 - closing anyway below
                pass
        try:
            proc.wait(10)
        except subprocess.TimeoutExpired:
            os.killpg(proc.pid, signal.SIGKILL)
            proc.wait()
        if cdp is not None:
            cdp.close()
        log.close()

    # doctor agrees: the profile's manifest is valid and its host answers.
    code, checks = env.doctor("--browser", "chromium", "--profile-dir", str(profile))
    assert [c["status"] for c in checks if c["check"] == "profile manifest"] == ["ok"]
    assert any(c["check"].startswith("self-test") and c["status"] == "ok" for c in checks)
