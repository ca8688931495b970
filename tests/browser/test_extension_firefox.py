"""The same dist/ in Firefox ESR: installed as a temporary add-on over
WebDriver BiDi, with the real host registered under a private HOME."""

from __future__ import annotations

import json
import os
import shutil
import socket
import subprocess
import sys
import time
from pathlib import Path

import pytest

from bidi import BiDi
from conftest import DIST, HOST_NAME

pytestmark = pytest.mark.browser

FIREFOX_ID = "cisbridge@cisbridge.org"
CALL = (
    "(async () => {{ if (!window.cisAuth) return {{ok: false, missing: true}};"
    " try {{ return {{ok: true, value: await window.cisAuth.{0}}}; }}"
    " catch (e) {{ return {{ok: false, name: e.name, code: e.code, message: e.message}}; }} }})()"
)


@pytest.fixture(scope="module")
def firefox(site, tmp_path_factory):
    yield from launch_firefox(site, tmp_path_factory, host_script=None)


@pytest.fixture(scope="module")
def firefox_scripted(site, tmp_path_factory):
    yield from launch_firefox(site, tmp_path_factory, host_script=Path(__file__).with_name("scripted_host.py"))


def launch_firefox(site, tmp_path_factory, host_script):
    binary = shutil.which("firefox-esr") or shutil.which("firefox")
    if binary is None:
        pytest.fail("firefox-esr is not installed (scripts/setup installs it)")
    work = tmp_path_factory.mktemp("firefox")
    home = work / "home"
    hosts = home / ".mozilla" / "native-messaging-hosts"
    hosts.mkdir(parents=True)
    config = work / "config.toml"
    config.write_text(f'allowed_origins = ["{site["allowed"]}"]\n\n[agent]\nkind = "none"\n')
    launcher = work / "cisbridge-host"
    launcher.write_text(
        "#!/bin/sh\n"
        f"echo \"$@\" >> '{work / 'host.argv'}'\n"
        f"export CISBRIDGE_CONFIG='{config}' CISBRIDGE_LOG_DIR='{work / 'host-log'}'\n"
        + (f"exec '{sys.executable}' '{host_script}' \"$@\"\n" if host_script
           else f"exec '{sys.executable}' -m cisbridge host \"$@\"\n")
    )
    launcher.chmod(0o755)
    (hosts / f"{HOST_NAME}.json").write_text(json.dumps({
        "name": HOST_NAME, "description": "cisbridge native host (browser test)", "path": str(launcher),
        "type": "stdio", "allowed_extensions": [FIREFOX_ID],
    }))
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        port = s.getsockname()[1]
    profile = work / "profile"
    profile.mkdir()
    proc = subprocess.Popen(
        [binary, "--headless", "--no-remote", "--profile", str(profile), "--remote-debugging-port", str(port)],
        env=dict(os.environ, HOME=str(home)), stdout=open(work / "firefox.log", "wb"), stderr=subprocess.STDOUT,
        start_new_session=True,
    )
    deadline = time.monotonic() + 60
    while True:
        try:
            bidi = BiDi(f"ws://127.0.0.1:{port}/session")
            break
        except OSError:
            if proc.poll() is not None or time.monotonic() > deadline:
                raise RuntimeError(f"firefox did not start: see {work / 'firefox.log'}") from None
            time.sleep(0.2)
    bidi.send("session.new", {"capabilities": {}})
    installed = bidi.send("webExtension.install", {"extensionData": {"type": "path", "path": str(DIST)}})
    assert installed["extension"] == FIREFOX_ID
    context = bidi.send("browsingContext.getTree")["contexts"][0]["context"]
    yield {"bidi": bidi, "context": context, "work": work}
    try:
        bidi.send("session.end", timeout=10)
    except Exception:
        pass
    proc.terminate()
    try:
        proc.wait(timeout=15)
    except subprocess.TimeoutExpired:
        os.killpg(proc.pid, 9)
        proc.wait()
    bidi.close()


def run(firefox, url: str, expression: str) -> dict:
    bidi, context = firefox["bidi"], firefox["context"]
    bidi.send("browsingContext.navigate", {"context": context, "url": url, "wait": "complete"})
    return bidi.evaluate_json(context, CALL.format(expression))


def test_firefox_page_to_host_and_back(firefox, site):
    status = run(firefox, site["allowed"] + "/", "getStatus()")
    assert status["ok"], status
    assert (status["value"]["protocol"], status["value"]["agent"]) == (1, "none")
    assert status["value"]["extension"] == json.loads((DIST / "manifest.json").read_text())["version"]
    assert run(firefox, site["allowed"] + "/", "getTicketNoAuth()") == {"ok": True, "value": None}
    # Firefox starts the host with the manifest path and the add-on id.
    argv = (firefox["work"] / "host.argv").read_text().split()
    assert argv[-1] == FIREFOX_ID


def test_firefox_other_origin_is_refused(firefox, site):
    outcome = run(firefox, site["other"] + "/", "getTicket()")
    assert (outcome["ok"], outcome["name"], outcome["code"]) == (False, "CisAuthError", "ORIGIN_NOT_ALLOWED")


def prompt_context(bidi, seen: set[str] = frozenset(), timeout: float = 10) -> str:
    """The next prompt window (a top-level context on our prompt page), once it shows its request."""
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        for ctx in bidi.send("browsingContext.getTree")["contexts"]:
            if ctx["url"].startswith("moz-extension://") and "/prompt.html" in ctx["url"] and ctx["context"] not in seen:
                try:
                    if bidi.evaluate_json(ctx["context"], "!!document.getElementById('origin')?.textContent"):
                        return ctx["context"]
                except Exception:
                    pass  # still loading
        time.sleep(0.05)
    raise AssertionError("no prompt window opened")


def test_firefox_prompt_windows_consent_and_passcode(firefox_scripted, site):
    bidi, context = firefox_scripted["bidi"], firefox_scripted["context"]
    bidi.send("browsingContext.navigate", {"context": context, "url": site["allowed"] + "/", "wait": "complete"})
    bidi.send("script.evaluate", {
        "expression": "window.__outcome = cisAuth.sign({algorithm: 'RS1', description: 'one letter', payloads: [{id: 'x', payload: 'AAEC'}]})"
                      ".then(value => ({ok: true, value}), e => ({ok: false, name: e.name, code: e.code})); true",
        "target": {"context": context}, "awaitPromise": False,
    })
    consent = prompt_context(bidi)
    shown = bidi.evaluate_json(consent, "['origin', 'consent-description', 'consent-count'].map(id => document.getElementById(id).textContent)")
    assert shown == [site["allowed"], "one letter", "1"]
    bidi.evaluate_json(consent, "(document.querySelector('#consent button.primary').click(), true)")
    pin = prompt_context(bidi, seen={consent})
    bidi.evaluate_json(pin, "(document.getElementById('pin-input').value = '0000', document.getElementById('pin').requestSubmit(), true)")
    outcome = bidi.evaluate_json(context, "window.__outcome")
    assert outcome["ok"], outcome
    assert [s["id"] for s in outcome["value"]["signatures"]] == ["x"]

    # Closing the window is a cancel.
    bidi.send("script.evaluate", {
        "expression": "window.__outcome = cisAuth.getTicket().then(value => ({ok: true, value}), e => ({ok: false, name: e.name, code: e.code})); true",
        "target": {"context": context}, "awaitPromise": False,
    })
    window = prompt_context(bidi, seen={consent, pin})
    bidi.send("browsingContext.close", {"context": window})
    assert bidi.evaluate_json(context, "window.__outcome") == {"ok": False, "name": "CisAuthError", "code": "USER_CANCELLED"}
