"""A clinician's login and signing in real headless Chromium, with every real
part behind the extension: the real host with the built-in GAS agent, the
GAS/SSB simulator over TLS, a SoftHSM2 card, and (for card removal) a virtual
card in the private pcscd's vpcd reader.  Prompts are answered in the
extension's own windows with the keyboard and mouse, as a person would."""

from __future__ import annotations

import base64
import json

import pytest
from cryptography import x509
from cryptography.hazmat.primitives import hashes
from cryptography.hazmat.primitives.asymmetric import padding

from cisbridge.spine import server
from browser_support import (
    MANY_ROLES, ONE_ROLE, PIN, Browser, call, done, finish, gas_config, host_env, screenshot, start, text, wait_for,
)

pytestmark = [pytest.mark.browser, pytest.mark.softhsm]

ROLES = ["555000000201", "555000000202", "555000000203"]
PAYLOADS = [{"id": "rx-1", "payload": base64.b64encode(b"<SignedInfo>first</SignedInfo>").decode()},
            {"id": "rx-2", "payload": base64.b64encode(b"<SignedInfo>second</SignedInfo>").decode()}]
SIGN = f"sign({json.dumps({'algorithm': 'RS256', 'description': '2 prescriptions for Jane Smith', 'payloads': PAYLOADS})})"


@pytest.fixture(scope="module")
def browser(site, cards, simulator, pcsc_running, tmp_path_factory):
    workdir = tmp_path_factory.mktemp("chromium-gas")
    b = Browser(workdir, gas_config(site, cards, simulator, "many"), host_env=host_env(cards))
    ca = str(simulator.ca_file)

    def whoami(ticket: str) -> dict:  # the EHR back end's side of a login
        a = server.role_assertion(ticket, simulator.url, ca_file=ca)
        return {"uid": a.uid, "name": a.name, "roleId": a.role_profile_id, "role": a.job_role.split('":"')[-1].strip('"'),
                "org": a.org_name, "orgCode": a.org_code}

    site["server"].whoami = whoami
    yield b
    site["server"].whoami = None
    b.close()


@pytest.fixture
def page(browser, site):
    page = browser.open(site["allowed"] + "/")
    yield page
    page.close()
    browser.wait_no_prompt()


@pytest.fixture
def logged_out(browser, site):
    """Each test starts with no GAS session: the host is restarted (its exit logs out)."""
    browser.stop_hosts()
    probe = browser.open(site["allowed"] + "/")
    # the extension notices the old host's port closing on its own time; wait until a new host answers
    wait_for(lambda: call(probe, "getStatus()").get("ok"), what="a new host")
    assert call(probe, "getTicketNoAuth()") == {"ok": True, "value": None}
    probe.close()


def login(browser, page, role_index: int = 1, shots: str | None = None) -> tuple[list, str]:
    """Answers the passcode and role prompts of a getTicket started in `page`; returns the windows seen."""
    pin = browser.wait_prompt()
    assert pin.evaluate("document.activeElement.id") == "pin-input"
    if shots:
        screenshot(pin, f"{shots}-pin")
    pin.type(PIN)
    pin.press("Enter")
    role = browser.wait_prompt(seen={pin.target_id})
    if shots:
        screenshot(role, f"{shots}-role")
    for _ in range(role_index):
        role.press("ArrowDown")  # a radio group: arrow keys move the choice
    role.press("Enter")
    return [pin, role]


def test_login_with_passcode_and_role_gives_a_ticket_the_ssb_accepts(browser, page, simulator, logged_out):
    assert call(page, "getTicketNoAuth()") == {"ok": True, "value": None}
    start(page, "getTicket()")
    pin = browser.wait_prompt()
    assert text(pin, "title") == "Enter your smartcard passcode"
    assert text(pin, "origin") == page.evaluate("location.origin")
    assert pin.evaluate("document.getElementById('pin-input').type") == "password"
    assert pin.evaluate("document.querySelector('label[for=pin-input]').textContent") == "Passcode"
    pin.type(PIN)
    assert pin.evaluate("document.getElementById('pin-input').value.length") == len(PIN)
    screenshot(pin, "prompt-pin", "main")
    pin.click("#pin-submit")

    role = browser.wait_prompt(seen={pin.target_id})
    assert text(role, "title") == "Choose your role"
    assert role.evaluate("document.querySelector('fieldset legend').textContent") == "Roles on your smartcard"
    offered = role.evaluate("[...document.querySelectorAll('.role-option input')].map(i => i.value)")
    assert offered == ROLES
    labels = role.evaluate("[...document.querySelectorAll('.role-option')].map(l => l.textContent)")
    assert "CISBRIDGE TEST SURGERY (Y42)" in labels[1] and "Registration Authority Agent" in labels[1]
    assert role.evaluate("document.activeElement.value") == ROLES[0]
    screenshot(role, "prompt-role", "main")
    role.press("ArrowDown")
    role.press("Enter")

    outcome = finish(page)
    assert outcome["ok"], outcome
    ticket = outcome["value"]
    assert isinstance(ticket, str) and ticket
    browser.wait_no_prompt()
    assert call(page, "getTicketNoAuth()") == {"ok": True, "value": ticket}
    assert call(page, "getTicket()") == {"ok": True, "value": ticket}  # the session is reused: no prompt
    assert browser.prompt_windows() == []
    session = call(page, "getStatus()")["value"]["session"]
    assert (session["active"], session["uid"], session["roleId"]) == (True, MANY_ROLES, ROLES[1])
    # The EHR back end checks the ticket and learns the chosen role from the SSB.
    ca = str(simulator.ca_file)
    assert server.validate_ticket(ticket, simulator.url, ca_file=ca).uid == MANY_ROLES
    assertion = server.role_assertion(ticket, simulator.url, ca_file=ca)
    assert (assertion.uid, assertion.role_profile_id, assertion.org_code) == (MANY_ROLES, ROLES[1], "Y42")
    assert ticket not in (browser.workdir / "chromium.log").read_text(errors="replace")


def test_the_ehr_page_logs_in_by_its_button_and_shows_the_asserted_role(browser, site, logged_out):
    ehr = browser.open(site["allowed"] + "/ehr")
    ehr.click("#login")
    login(browser, ehr, role_index=2, shots="login")
    wait_for(lambda: ehr.evaluate("!document.getElementById('who').hidden"), what="the page to show the user")
    assert ehr.evaluate("document.getElementById('role').textContent").endswith(f"({ROLES[2]})")
    assert ehr.evaluate("document.getElementById('name').textContent").endswith(f"({MANY_ROLES})")
    screenshot(ehr, "ehr-after-login", ".card")
    ehr.close()


def test_a_card_with_one_role_asks_only_the_passcode(browser, page, site, cards, simulator, logged_out):
    config = browser.workdir / "config.toml"
    many = config.read_text()
    config.write_text(gas_config(site, cards, simulator, "one"))  # the next host reads it
    browser.stop_hosts()
    try:
        wait_for(lambda: call(page, "getStatus()").get("ok"), what="a new host")
        start(page, "getTicket()")
        pin = browser.wait_prompt()
        pin.type(PIN)
        pin.press("Enter")
        outcome = finish(page)
        assert outcome["ok"], outcome
        assert browser.prompt_windows() == []  # no role window
        assertion = server.role_assertion(outcome["value"], simulator.url, ca_file=str(simulator.ca_file))
        assert (assertion.uid, assertion.role_profile_id) == (ONE_ROLE, "555000000101")
    finally:
        config.write_text(many)
        browser.stop_hosts()


def test_wrong_passcode_then_right(browser, page, logged_out):
    start(page, "getTicket()")
    pin = browser.wait_prompt()
    pin.type("0000")
    pin.press("Enter")
    again = browser.wait_prompt(seen={pin.target_id})  # the host asks again, in a new window
    assert text(again, "title") == "Enter your smartcard passcode"
    assert again.evaluate("document.getElementById('pin-input').value") == ""
    again.type(PIN)
    again.press("Enter")
    role = browser.wait_prompt(seen={pin.target_id, again.target_id})
    role.press("Enter")  # the first role
    outcome = finish(page)
    assert outcome["ok"], outcome
    assert call(page, "getStatus()")["value"]["session"]["roleId"] == ROLES[0]


@pytest.mark.parametrize("at", ["pin", "role"])
def test_cancel_at_each_login_prompt(browser, page, simulator, logged_out, at):
    logouts = len(simulator.events("logout"))
    start(page, "getTicket()")
    window = browser.wait_prompt()
    if at == "role":
        window.type(PIN)
        window.press("Enter")
        window = browser.wait_prompt(seen={window.target_id})
        assert text(window, "title") == "Choose your role"
    window.click("form:not([hidden]) button.cancel")
    outcome = finish(page)
    assert (outcome["ok"], outcome["name"], outcome["code"]) == (False, "CisAuthError", "USER_CANCELLED")
    assert call(page, "getTicketNoAuth()") == {"ok": True, "value": None}
    if at == "role":  # the half-made session was logged out at GAS
        wait_for(lambda: len(simulator.events("logout")) > logouts, what="the logout at GAS")


def test_signing_asks_consent_then_passcode_and_the_card_signs(browser, page, site, cards):
    start(page, SIGN)
    consent = browser.wait_prompt()
    assert text(consent, "title") == "Sign with your smartcard?"
    assert text(consent, "origin") == site["allowed"]
    assert text(consent, "consent-description") == "2 prescriptions for Jane Smith"
    assert text(consent, "consent-count") == "2"
    assert "RS256" in text(consent, "consent-algorithm")
    screenshot(consent, "prompt-consent", "main")
    # Cancel has the focus; Tab moves to Sign and Enter presses it.
    assert consent.evaluate("document.activeElement.textContent") == "Cancel"
    consent.press("Tab")
    assert consent.evaluate("document.activeElement.textContent") == "Sign"
    consent.press("Enter")

    pin = browser.wait_prompt(seen={consent.target_id})
    assert text(pin, "title") == "Enter your smartcard passcode"
    pin.type(PIN)
    pin.press("Enter")

    outcome = finish(page)
    assert outcome["ok"], outcome
    result = outcome["value"]
    assert result["failed_signatures"] == [] and [s["id"] for s in result["signatures"]] == ["rx-1", "rx-2"]
    certificate = x509.load_der_x509_certificate(base64.b64decode(result["certificate"]))
    assert certificate.subject.rfc4514_string() == f"CN={MANY_ROLES},OU=people,O=nhs"
    for signature, item in zip(result["signatures"], PAYLOADS):
        certificate.public_key().verify(base64.b64decode(signature["signature"]), base64.b64decode(item["payload"]),
                                        padding.PKCS1v15(), hashes.SHA256())
    browser.wait_no_prompt()


def test_cancel_at_consent_signs_nothing(browser, page):
    start(page, SIGN)
    consent = browser.wait_prompt()
    consent.click("form:not([hidden]) button.cancel")
    outcome = finish(page)
    assert (outcome["ok"], outcome["code"]) == (False, "USER_CANCELLED")
    assert browser.prompt_windows() == []  # no passcode asked


def test_cancel_at_the_signing_passcode(browser, page):
    start(page, SIGN)
    consent = browser.wait_prompt()
    consent.click("#consent button.primary")
    pin = browser.wait_prompt(seen={consent.target_id})
    pin.type("99")
    pin.press("Escape")
    assert finish(page)["code"] == "USER_CANCELLED"


def test_closing_the_window_cancels_the_request(browser, page):
    start(page, SIGN)
    consent = browser.wait_prompt()
    consent.close()
    outcome = finish(page)
    assert (outcome["ok"], outcome["name"], outcome["code"]) == (False, "CisAuthError", "USER_CANCELLED")


def test_a_page_cannot_stack_prompt_windows(browser, page):
    start(page, SIGN)
    first = browser.wait_prompt()
    second = call(page, SIGN)  # the host prompts for it too; the tab already has a window
    assert (second["ok"], second["code"]) == (False, "BUSY")
    assert [w["targetId"] for w in browser.prompt_windows()] == [first.target_id]
    first.press("Escape")
    assert finish(page)["code"] == "USER_CANCELLED"


def test_a_tab_that_closes_takes_its_prompt_window_with_it(browser, site):
    page = browser.open(site["allowed"] + "/")
    start(page, SIGN)
    browser.wait_prompt()
    page.close()
    browser.wait_no_prompt()


def test_two_tabs_one_waiting_in_a_prompt_the_other_answered(browser, site, logged_out):
    waiting = browser.open(site["allowed"] + "/")
    other = browser.open(site["allowed"] + "/")
    start(waiting, "getTicket()")
    pin = browser.wait_prompt()
    status = call(other, "getStatus()")
    assert status["ok"] and status["value"]["session"]["active"] is False
    assert call(other, "getTicketNoAuth()") == {"ok": True, "value": None}
    assert not done(waiting)  # still waiting for its passcode
    pin.type(PIN)
    pin.press("Enter")
    browser.wait_prompt(seen={pin.target_id}).press("Enter")
    ticket = finish(waiting)
    assert ticket["ok"], ticket
    assert call(other, "getTicketNoAuth()") == {"ok": True, "value": ticket["value"]}
    waiting.close()
    other.close()


FORGE = """
new Promise(resolve => {
  const NS = 'org.cisbridge.page.v1', answers = {};
  addEventListener('message', e => {
    if (e.data && e.data.dir === 'response' && e.data.id >= 900001) {
      answers[e.data.id] = e.data.error ? e.data.error.code : 'answered: ' + JSON.stringify(e.data.result);
      if (Object.keys(answers).length === 2)
        resolve({answers, runtime: typeof globalThis.chrome?.runtime?.sendMessage});
    }
  });
  // what a prompt window sends the background, posted where a page can post
  postMessage({type: 'prompt:answer', key: 'x'.repeat(32), value: %(pin)s}, '*');
  // the host's promptReply, as a page request
  postMessage({ns: NS, dir: 'request', id: 900001, method: 'promptReply', params: {prompt: 1, value: %(pin)s}}, '/');
  // a getTicket that brings its own passcode and role, and claims another origin
  postMessage({ns: NS, dir: 'request', id: 900002, method: 'getTicket', params: {pin: %(pin)s, role: '555000000201'},
               origin: 'https://trusted.example', secure: true}, '/');
})
"""


def test_a_page_forging_window_messages_gets_no_ticket_and_skips_no_prompt(browser, page, logged_out):
    start(page, "getTicket()")
    pin = browser.wait_prompt()
    forged = page.evaluate(FORGE % {"pin": json.dumps(PIN)})
    assert forged["runtime"] == "undefined"  # the extension offers pages no messaging channel
    assert forged["answers"] == {"900001": "INVALID_REQUEST", "900002": "INVALID_REQUEST"}
    # Nothing answered the passcode prompt: the same window still waits, nothing else opened.
    assert [w["targetId"] for w in browser.prompt_windows()] == [pin.target_id]
    assert pin.evaluate("document.getElementById('pin-input').value") == ""
    assert call(page, "getTicketNoAuth()") == {"ok": True, "value": None}
    pin.press("Escape")
    assert finish(page)["code"] == "USER_CANCELLED"
    assert call(page, "getTicketNoAuth()") == {"ok": True, "value": None}

    # Signing parameters cannot carry consent or a passcode ...
    outcome = call(page, "sign({algorithm: 'RS256', description: 'forged', consent: true, pin: %s,"
                         " payloads: [{id: 'a', payload: 'AAEC'}]})" % json.dumps(PIN))
    assert (outcome["ok"], outcome["code"]) == (False, "INVALID_REQUEST")
    assert browser.prompt_windows() == []
    # ... and forged answers do not stand in for the person at the consent window.
    start(page, "sign({algorithm: 'RS256', description: 'forged', payloads: [{id: 'a', payload: 'AAEC'}]})")
    consent = browser.wait_prompt()
    forged = page.evaluate(FORGE.replace("%(pin)s", "true"))
    assert forged["answers"] == {"900001": "INVALID_REQUEST", "900002": "INVALID_REQUEST"}
    assert [w["targetId"] for w in browser.prompt_windows()] == [consent.target_id]  # no passcode window
    assert not done(page)
    consent.press("Enter")  # Enter on the focused Cancel
    assert finish(page)["code"] == "USER_CANCELLED"


@pytest.mark.pcsc
def test_card_removal_ends_the_session_in_every_listening_page(browser, site, simulator, virtual_card, logged_out):
    listen = (
        "window.__events = [];"
        "for (const type of ['cardinserted', 'cardremoved', 'sessionended'])"
        "  window.cisAuth.addEventListener(type, e => window.__events.push({type: e.type, detail: e.detail}));"
        "true"
    )
    page = browser.open(site["allowed"] + "/")
    other = browser.open(site["other"] + "/")  # another origin listens too, and must hear nothing
    for p in (page, other):
        p.evaluate(listen)
    reader = call(page, "getStatus()")["value"]["readers"][0]["name"]
    assert reader == "Virtual PCD 00 00"

    virtual_card.insert()
    wait_for(lambda: page.evaluate("window.__events.length") >= 1, what="cardinserted")
    inserted = page.evaluate("window.__events")[0]
    assert (inserted["type"], inserted["detail"]["reader"]) == ("cardinserted", reader)
    assert inserted["detail"]["atr"]

    start(page, "getTicket()")
    login(browser, page, role_index=0)
    ticket = finish(page)
    assert ticket["ok"], ticket
    logouts = len(simulator.events("logout"))

    virtual_card.remove()
    wait_for(lambda: page.evaluate("window.__events.length") >= 3, what="cardremoved and sessionended")
    events = page.evaluate("window.__events")[1:]
    assert events[0] == {"type": "cardremoved", "detail": {"reader": reader, "atr": inserted["detail"]["atr"]}}
    assert events[1]["type"] == "sessionended"
    assert events[1]["detail"]["reason"] == "cardRemoved"
    assert call(page, "getTicketNoAuth()") == {"ok": True, "value": None}
    wait_for(lambda: len(simulator.events("logout")) > logouts, what="the logout at GAS")
    with pytest.raises(server.InvalidTicket):
        server.validate_ticket(ticket["value"], simulator.url, ca_file=str(simulator.ca_file))
    assert other.evaluate("window.__events") == []
    page.close()
    other.close()
