"""Page -> extension -> real host -> page, in real headless Chromium."""

from __future__ import annotations

import json
import time

import pytest

from browser_support import DIST, Browser, call, pid_alive

pytestmark = pytest.mark.browser


@pytest.fixture(scope="module")
def browser(site, tmp_path_factory):
    workdir = tmp_path_factory.mktemp("chromium")
    config = f'allowed_origins = ["{site["allowed"]}"]\n\n[agent]\nkind = "none"\n'
    b = Browser(workdir, config)
    yield b
    b.close()


def test_api_is_a_frozen_event_target_present_before_page_scripts(browser, site):
    page = browser.open(site["allowed"] + "/")
    facts = page.evaluate(
        "({present: typeof window.cisAuth, eventTarget: window.cisAuth instanceof EventTarget,"
        " frozen: Object.isFrozen(window.cisAuth),"
        " replaced: (() => { try { window.cisAuth = 1; } catch (e) {} return typeof window.cisAuth; })(),"
        " methods: ['getTicket','getTicketNoAuth','getCertificate','sign','getStatus'].map(m => typeof window.cisAuth[m])})"
    )
    assert facts == {
        "present": "object", "eventTarget": True, "frozen": True, "replaced": "object",
        "methods": ["function"] * 5,
    }


def test_get_status_goes_through_the_real_host(browser, site):
    page = browser.open(site["allowed"] + "/")
    outcome = call(page, "getStatus()")
    assert outcome["ok"], outcome
    status = outcome["value"]
    manifest = json.loads((DIST / "manifest.json").read_text())
    assert status["extension"] == manifest["version"]
    assert status["protocol"] == 1
    assert status["agent"] == "none"
    from cisbridge import __version__
    assert status["host"] == __version__
    assert isinstance(status["readers"], list) and isinstance(status["cardPresent"], bool)
    assert status["session"]["active"] is False


def test_get_ticket_no_auth_is_null_without_a_session(browser, site):
    page = browser.open(site["allowed"] + "/")
    outcome = call(page, "getTicketNoAuth()")
    assert outcome == {"ok": True, "value": None}


def test_other_origin_is_refused_without_any_window(browser, site):
    page = browser.open(site["other"] + "/")
    before = browser.prompt_windows()
    for expression in ("getTicket()", "getStatus()", "getTicketNoAuth()"):
        outcome = call(page, expression)
        assert outcome["ok"] is False, outcome
        assert outcome["name"] == "CisAuthError" and outcome["isError"] is True
        assert outcome["code"] == "ORIGIN_NOT_ALLOWED"
        assert site["other"] in outcome["message"]
    time.sleep(0.5)  # a window would have been opened by now
    assert before == [] and browser.prompt_windows() == []


def test_plain_http_page_on_a_non_loopback_name_is_insecure_context(browser, site):
    # ehr.cisbridge.test resolves to 127.0.0.1 (conftest), but by its name it is plain http on the network.
    page = browser.open(site["insecure"] + "/")
    assert page.evaluate("location.origin + ' ' + isSecureContext") == f"{site['insecure']} false"
    for expression in ("getStatus()", "getTicket()"):
        outcome = call(page, expression)
        assert (outcome["ok"], outcome["name"], outcome["code"]) == (False, "CisAuthError", "INSECURE_CONTEXT")
        assert "not a secure context" in outcome["message"]
    assert browser.prompt_windows() == []


def test_unknown_method_shape_is_refused_as_invalid_request(browser, site):
    page = browser.open(site["allowed"] + "/")
    outcome = page.evaluate(
        "new Promise(resolve => {"
        "  addEventListener('message', e => { if (e.data && e.data.dir === 'response' && e.data.id === 999999) resolve(e.data.error.code); });"
        "  postMessage({ns: 'org.cisbridge.page.v1', dir: 'request', id: 999999, method: 'deleteEverything', params: {}}, '/');"
        "})"
    )
    assert outcome == "INVALID_REQUEST"


def test_requests_work_again_after_the_host_exits(browser, site):
    page = browser.open(site["allowed"] + "/")
    assert call(page, "getStatus()")["ok"]
    pids = [p for p in browser.host_pids() if pid_alive(p)]
    assert pids, "the browser should have started the host"
    for pid in pids:
        import os, signal
        os.kill(pid, signal.SIGTERM)
    deadline = time.monotonic() + 5
    while any(pid_alive(p) for p in pids) and time.monotonic() < deadline:
        time.sleep(0.05)
    time.sleep(0.3)  # let the browser notice the port closed
    outcome = call(page, "getStatus()")
    assert outcome["ok"], outcome
    assert [p for p in browser.host_pids() if pid_alive(p)] != pids


def frame_outcome(page, src: str, sandbox: str | None = None) -> dict:
    """Embeds `src` (a probe page) in an iframe and returns what its cisAuth call gave."""
    return page.evaluate(
        "new Promise(resolve => {"
        "  addEventListener('message', e => resolve(e.data), {once: true});"
        "  const frame = document.createElement('iframe');"
        f"  frame.src = {json.dumps(src)};"
        + (f"  frame.sandbox = {json.dumps(sandbox)};" if sandbox is not None else "")
        +
        "  document.body.append(frame);"
        "})"
    )


def test_frames_are_judged_by_their_own_origin(browser, site):
    allowed_page = browser.open(site["allowed"] + "/")
    # An allowed page does not lend the card to a frame of another origin ...
    assert frame_outcome(allowed_page, site["other"] + "/probe") == {"ok": False, "code": "ORIGIN_NOT_ALLOWED", "origin": site["other"]}
    # ... and an allowed origin framed by another page is still itself.
    other_page = browser.open(site["other"] + "/")
    assert frame_outcome(other_page, site["allowed"] + "/probe") == {"ok": True, "origin": site["allowed"]}
    # A sandboxed frame has an opaque origin, whatever its URL.
    sandboxed = frame_outcome(allowed_page, site["allowed"] + "/probe", sandbox="allow-scripts")
    assert (sandboxed["ok"], sandboxed["code"]) == (False, "ORIGIN_NOT_ALLOWED")
    assert browser.prompt_windows() == []
