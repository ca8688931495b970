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

import pytest

from bidi import BiDi
from browser_support import DIST, HOST_NAME, MANY_ROLES, PIN, gas_config, host_env, virtual_card  # noqa: F401 (fixtures)

from cisbridge.spine import server

pytestmark = pytest.mark.browser

FIREFOX_ID = "cisbridge@cisbridge.org"
CALL = (
    "(async () => {{ if (!window.cisAuth) return {{ok: false, missing: true}};"
    " try {{ return {{ok: true, value: await window.cisAuth.{0}}}; }}"
    " catch (e) {{ return {{ok: false, name: e.name, code: e.code, message: e.message}}; }} }})()"
)


@pytest.fixture(scope="module")
def firefox(site, tmp_path_factory):
    yield from launch_firefox(tmp_path_factory, f'allowed_origins = ["{site["allowed"]}"]\n\n[agent]\nkind = "none"\n')


@pytest.fixture(scope="module")
def firefox_gas(site, cards, simulator, pcsc_running, tmp_path_factory):
    """Firefox whose host has the GAS agent at the simulator and the three-role SoftHSM card."""
    yield from launch_firefox(tmp_path_factory, gas_config(site, cards, simulator, "many"), host_env(cards))


def launch_firefox(tmp_path_factory, config_text: str, env: dict[str, str] | None = None):
    binary = shutil.which("firefox-esr") or shutil.which("firefox")
    if binary is None:
        pytest.fail("firefox-esr is not installed (scripts/setup installs it)")
    work = tmp_path_factory.mktemp("firefox")
    home = work / "home"
    hosts = home / ".mozilla" / "native-messaging-hosts"
    hosts.mkdir(parents=True)
    config = work / "config.toml"
    config.write_text(config_text)
    launcher = work / "cisbridge-host"
    launcher.write_text(
        "#!/bin/sh\n"
        f"echo \"$@\" >> '{work / 'host.argv'}'\n"
        f"export CISBRIDGE_CONFIG='{config}' CISBRIDGE_LOG_DIR='{work / 'host-log'}'\n"
        + "".join(f"export {name}='{value}'\n" for name, value in (env or {}).items())
        + f"exec '{sys.executable}' -m cisbridge host \"$@\"\n"
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


KEYS = {"Enter": "\ue007", "Escape": "\ue00c", "Tab": "\ue004", "ArrowDown": "\ue015"}


def keys(bidi, context: str, *presses: str) -> None:
    """Types into the focused element of `context` with real key events (WebDriver BiDi input actions)."""
    actions = []
    for press in presses:
        for char in ([KEYS[press]] if press in KEYS else list(press)):
            actions += [{"type": "keyDown", "value": char}, {"type": "keyUp", "value": char}]
    try:
        bidi.send("input.performActions", {"context": context, "actions": [{"type": "key", "id": "keyboard", "actions": actions}]})
    except Exception:  # the key closed the window (Enter or Escape on a prompt): fine once it is gone
        if any(c["context"] == context for c in bidi.send("browsingContext.getTree")["contexts"]):
            raise


def begin(bidi, context: str, expression: str) -> None:
    bidi.send("script.evaluate", {
        "expression": f"window.__outcome = cisAuth.{expression}"
                      ".then(value => ({ok: true, value}), e => ({ok: false, name: e.name, code: e.code})); true",
        "target": {"context": context}, "awaitPromise": False,
    })


@pytest.mark.softhsm
def test_firefox_login_with_passcode_and_role_prompts_against_gas(firefox_gas, site, simulator):
    bidi, context = firefox_gas["bidi"], firefox_gas["context"]
    bidi.send("browsingContext.navigate", {"context": context, "url": site["allowed"] + "/", "wait": "complete"})
    assert bidi.evaluate_json(context, CALL.format("getTicketNoAuth()")) == {"ok": True, "value": None}
    begin(bidi, context, "getTicket()")
    pin = prompt_context(bidi)
    assert bidi.evaluate_json(pin, "document.getElementById('title').textContent") == "Enter your smartcard passcode"
    assert bidi.evaluate_json(pin, "document.activeElement.id") == "pin-input"
    keys(bidi, pin, "0000", "Enter")  # wrong: asked again in a new window
    again = prompt_context(bidi, seen={pin})
    keys(bidi, again, PIN, "Enter")
    role = prompt_context(bidi, seen={pin, again})
    offered = bidi.evaluate_json(role, "[...document.querySelectorAll('.role-option input')].map(i => i.value)")
    assert offered == ["555000000201", "555000000202", "555000000203"]
    keys(bidi, role, "ArrowDown", "ArrowDown", "Enter")
    outcome = bidi.evaluate_json(context, "window.__outcome")
    assert outcome["ok"], outcome
    ticket = outcome["value"]
    assert bidi.evaluate_json(context, CALL.format("getTicketNoAuth()")) == {"ok": True, "value": ticket}
    assertion = server.role_assertion(ticket, simulator.url, ca_file=str(simulator.ca_file))
    assert (assertion.uid, assertion.role_profile_id) == (MANY_ROLES, "555000000203")


@pytest.mark.softhsm
def test_firefox_signing_consent_then_passcode_and_cancel(firefox_gas, site):
    bidi, context = firefox_gas["bidi"], firefox_gas["context"]
    bidi.send("browsingContext.navigate", {"context": context, "url": site["allowed"] + "/", "wait": "complete"})
    begin(bidi, context, "sign({algorithm: 'RS256', description: 'one letter', payloads: [{id: 'x', payload: 'AAEC'}]})")
    consent = prompt_context(bidi)
    shown = bidi.evaluate_json(consent, "['origin', 'consent-description', 'consent-count'].map(id => document.getElementById(id).textContent)")
    assert shown == [site["allowed"], "one letter", "1"]
    assert bidi.evaluate_json(consent, "document.activeElement.textContent") == "Cancel"
    keys(bidi, consent, "Tab", "Enter")
    pin = prompt_context(bidi, seen={consent})
    keys(bidi, pin, PIN, "Enter")
    outcome = bidi.evaluate_json(context, "window.__outcome")
    assert outcome["ok"], outcome
    assert [s["id"] for s in outcome["value"]["signatures"]] == ["x"] and outcome["value"]["failed_signatures"] == []

    # Escape at the consent window, and closing a window, are both a cancel.
    begin(bidi, context, "sign({algorithm: 'RS256', payloads: [{id: 'y', payload: 'AAEC'}]})")
    window = prompt_context(bidi, seen={consent, pin})
    keys(bidi, window, "Escape")
    assert bidi.evaluate_json(context, "window.__outcome") == {"ok": False, "name": "CisAuthError", "code": "USER_CANCELLED"}
    begin(bidi, context, "sign({algorithm: 'RS256', payloads: [{id: 'z', payload: 'AAEC'}]})")
    closing = prompt_context(bidi, seen={consent, pin, window})
    bidi.send("browsingContext.close", {"context": closing})
    assert bidi.evaluate_json(context, "window.__outcome") == {"ok": False, "name": "CisAuthError", "code": "USER_CANCELLED"}


@pytest.mark.pcsc
@pytest.mark.softhsm
def test_firefox_card_removal_ends_the_session_in_the_page(firefox_gas, site, simulator, virtual_card):
    bidi, context = firefox_gas["bidi"], firefox_gas["context"]
    bidi.send("browsingContext.navigate", {"context": context, "url": site["allowed"] + "/", "wait": "complete"})
    bidi.evaluate_json(context, (
        "(window.__events = [], ['cardinserted', 'cardremoved', 'sessionended'].forEach(type =>"
        " cisAuth.addEventListener(type, e => window.__events.push({type: e.type, detail: e.detail}))), true)"
    ))
    assert bidi.evaluate_json(context, CALL.format("getStatus()"))["value"]["readers"][0]["name"] == "Virtual PCD 00 00"
    virtual_card.insert()
    wait_events(bidi, context, 1)
    if bidi.evaluate_json(context, CALL.format("getTicketNoAuth()"))["value"] is None:
        begin(bidi, context, "getTicket()")
        pin = prompt_context(bidi)
        keys(bidi, pin, PIN, "Enter")
        keys(bidi, prompt_context(bidi, seen={pin}), "Enter")
        assert bidi.evaluate_json(context, "window.__outcome")["ok"]
    logouts = len(simulator.events("logout"))
    virtual_card.remove()
    events = wait_events(bidi, context, 3)
    assert [e["type"] for e in events] == ["cardinserted", "cardremoved", "sessionended"]
    assert events[1]["detail"]["reader"] == "Virtual PCD 00 00" and events[2]["detail"]["reason"] == "cardRemoved"
    assert bidi.evaluate_json(context, CALL.format("getTicketNoAuth()")) == {"ok": True, "value": None}
    deadline = time.monotonic() + 10
    while len(simulator.events("logout")) <= logouts:
        assert time.monotonic() < deadline, "no logout reached GAS"
        time.sleep(0.05)


def wait_events(bidi, context: str, count: int, timeout: float = 10) -> list:
    deadline = time.monotonic() + timeout
    while True:
        events = bidi.evaluate_json(context, "window.__events")
        if len(events) >= count:
            return events
        assert time.monotonic() < deadline, f"page events so far: {events}"
        time.sleep(0.05)
