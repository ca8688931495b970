"""A real headless Firefox ESR finds the host that `cisbridge install --browser firefox`
registered in the (private) HOME's ~/.mozilla/native-messaging-hosts/."""

from __future__ import annotations

import os
import shutil
import socket
import subprocess
import sys
import time

import pytest
from installenv import CDP_HELPERS, DIST, FIREFOX_ID, HOST

pytestmark = pytest.mark.browser


def _requirements() -> str | None:
    """What is missing to run this test, or None."""
    if not (DIST / "manifest.json").is_file():
        return "extension/dist is not built: run scripts/setup (it builds the extension)"
    if not (CDP_HELPERS / "bidi.py").is_file():
        return "tests/browser/bidi.py (the WebDriver BiDi client) is missing"
    try:
        import websockets  # noqa: F401
    except ImportError:
        return "the websockets package (test extra) is not installed: run scripts/setup"
    if not (shutil.which("firefox-esr") or shutil.which("firefox")):
        return "firefox-esr is not installed"
    return None


def test_installed_host_answers_get_status_in_firefox(env, site, tmp_path):
    missing = _requirements()
    if missing:
        pytest.fail(missing)  # scripts/setup provides all of it: a missing part is a broken setup
    sys.path.insert(0, str(CDP_HELPERS))
    from bidi import BiDi

    env.config.write_text(f'allowed_origins = ["{site}"]\n')
    env.run("install", "--browser", "firefox")
    assert (env.home / ".mozilla/native-messaging-hosts" / f"{HOST}.json").is_file()

    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        port = s.getsockname()[1]
    profile = tmp_path / "profile"
    profile.mkdir()
    binary = shutil.which("firefox-esr") or shutil.which("firefox")
    log = open(tmp_path / "firefox.log", "wb")
    proc = subprocess.Popen(
        [binary, "--headless", "--no-remote", "--profile", str(profile), "--remote-debugging-port", str(port)],
        env=env.vars, stdout=log, stderr=subprocess.STDOUT, start_new_session=True,
    )
    bidi = None
    try:
        deadline = time.monotonic() + 60
        while bidi is None:
            try:
                bidi = BiDi(f"ws://127.0.0.1:{port}/session")
            except OSError:
                assert proc.poll() is None and time.monotonic() < deadline, "firefox did not start"
                time.sleep(0.2)
        bidi.send("session.new", {"capabilities": {}})
        installed = bidi.send("webExtension.install", {"extensionData": {"type": "path", "path": str(DIST)}})
        assert installed["extension"] == FIREFOX_ID
        context = bidi.send("browsingContext.getTree")["contexts"][0]["context"]
        bidi.send("browsingContext.navigate", {"context": context, "url": site + "/", "wait": "complete"})
        outcome = bidi.evaluate_json(context, (
            "(async () => { for (let i = 0; i < 100 && !window.cisAuth; i++) await new Promise(r => setTimeout(r, 50));"
            " try { return {ok: true, value: await window.cisAuth.getStatus()}; }"
            " catch (e) { return {ok: false, code: e.code, message: e.message}; } })()"
        ))
        assert outcome["ok"], outcome
        assert outcome["value"]["protocol"] == 1
        host_log = "".join(p.read_text() for p in (tmp_path / "log").glob("*.log*"))
        assert f"started by {FIREFOX_ID}" in host_log
    finally:
        if bidi is not None:
            try:
                bidi.send("session.end", timeout=10)
            except Exception:  # noqa: BLE001 - ending anyway below
                pass
        proc.terminate()
        try:
            proc.wait(15)
        except subprocess.TimeoutExpired:
            os.killpg(proc.pid, 9)
            proc.wait()
        if bidi is not None:
            bidi.close()
        log.close()
