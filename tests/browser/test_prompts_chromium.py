"""The extension's prompt windows in real headless Chromium, against the real
host core running scripted card actions (see scripted_host.py)."""

from __future__ import annotations

import base64
import hashlib
import time
from pathlib import Path

import pytest

from conftest import Browser, call

pytestmark = pytest.mark.browser

PAYLOADS = [{"id": "rx-1", "payload": base64.b64encode(b"first").decode()}, {"id": "rx-2", "payload": base64.b64encode(b"second").decode()}]
SIGN = "sign({algorithm: 'RS256', description: '2 prescriptions for Jane Smith', payloads: %s})" % str(PAYLOADS).replace("'", '"')


@pytest.fixture(scope="module")
def browser(site, tmp_path_factory):
    workdir = tmp_path_factory.mktemp("chromium-prompts")
    config = f'allowed_origins = ["{site["allowed"]}"]\n\n[agent]\nkind = "none"\n'
    b = Browser(workdir, config, host_script=Path(__file__).with_name("scripted_host.py"))
    yield b
    b.close()


@pytest.fixture
def page(browser, site):
    page = browser.open(site["allowed"] + "/")
    yield page
    page.close()
    browser.wait_no_prompt()


def start(page, expression: str) -> None:
    """Starts a cisAuth call without waiting; `finish` collects its outcome."""
    page.evaluate(
        f"window.__outcome = window.cisAuth.{expression}"
        ".then(value => ({ok: true, value}), e => ({ok: false, name: e.name, code: e.code, message: e.message})); true"
    )


def finish(page) -> dict:
    return page.evaluate("window.__outcome")


def text(window, element_id: str) -> str:
    return window.evaluate(f"document.getElementById('{element_id}').textContent")


def digest(data: bytes) -> str:
    return base64.b64encode(hashlib.sha256(data).digest()).decode()


def test_signing_asks_consent_then_passcode_in_extension_windows_by_keyboard(browser, page, site):
    start(page, SIGN)
    consent = browser.wait_prompt()
    assert text(consent, "title") == "Sign with your smartcard?"
    assert text(consent, "origin") == site["allowed"]
    assert text(consent, "consent-description") == "2 prescriptions for Jane Smith"
    assert text(consent, "consent-count") == "2"
    assert "RS256" in text(consent, "consent-algorithm")
    # Cancel has the focus; Tab moves to Sign and Enter presses it.
    assert consent.evaluate("document.activeElement.textContent") == "Cancel"
    consent.press("Tab")
    assert consent.evaluate("document.activeElement.textContent") == "Sign"
    consent.press("Enter")

    pin = browser.wait_prompt(seen={consent.target_id})
    assert text(pin, "title") == "Enter your smartcard passcode"
    assert pin.evaluate("document.activeElement.id") == "pin-input"
    assert pin.evaluate("document.getElementById('pin-input').type") == "password"
    assert pin.evaluate("document.querySelector('label[for=pin-input]').textContent") == "Passcode"
    assert "Last attempt" in text(pin, "pin-attempts")
    assert pin.evaluate("document.getElementById('pin-attempts').getAttribute('role')") == "alert"
    pin.type("246813")
    pin.press("Enter")

    outcome = finish(page)
    assert outcome["ok"], outcome
    assert outcome["value"]["signatures"] == [
        {"id": "rx-1", "signature": digest(b"246813first")},
        {"id": "rx-2", "signature": digest(b"246813second")},
    ]
    browser.wait_no_prompt()


def test_passcode_then_role_choice_gives_the_ticket_for_the_chosen_role(browser, page):
    start(page, "getTicket()")
    pin = browser.wait_prompt()
    assert "3 attempts left" in text(pin, "pin-attempts")
    pin.type("1234")
    pin.press("Enter")
    role = browser.wait_prompt(seen={pin.target_id})
    assert text(role, "title") == "Choose your role"
    labels = role.evaluate("[...document.querySelectorAll('.role-option')].map(l => l.textContent)")
    assert labels == [
        " Clinical Practitioner — Leeds Teaching Hospitals (RR8)",
        " General Medical Practitioner — Bramley Surgery (B86001)",
    ]
    assert role.evaluate("document.querySelector('fieldset legend').textContent") == "Roles on your smartcard"
    role.press("ArrowDown")  # radio group: arrow keys move the choice
    role.press("Enter")
    outcome = finish(page)
    assert outcome == {"ok": True, "value": f"ticket:R8003:{digest(b'1234')}"}


def test_closing_the_window_cancels_the_request(browser, page):
    start(page, SIGN)
    consent = browser.wait_prompt()
    consent.close()
    outcome = finish(page)
    assert (outcome["ok"], outcome["name"], outcome["code"]) == (False, "CisAuthError", "USER_CANCELLED")


def test_escape_cancels(browser, page):
    start(page, "getTicket()")
    pin = browser.wait_prompt()
    pin.type("99")
    pin.press("Escape")
    outcome = finish(page)
    assert outcome["code"] == "USER_CANCELLED"


def test_a_page_cannot_stack_prompt_windows(browser, page):
    start(page, SIGN)
    first = browser.wait_prompt()
    second = call(page, SIGN)  # the host prompts for it too; the tab already has a window
    assert (second["ok"], second["code"]) == (False, "BUSY")
    time.sleep(0.3)
    assert [w["targetId"] for w in browser.prompt_windows()] == [first.target_id]
    first.press("Escape")
    assert finish(page)["code"] == "USER_CANCELLED"


def test_a_tab_that_closes_takes_its_prompt_window_with_it(browser, site):
    page = browser.open(site["allowed"] + "/")
    start(page, SIGN)
    browser.wait_prompt()
    page.close()
    browser.wait_no_prompt()


def test_card_events_reach_listening_pages_of_allowed_origins_only(browser, page, site):
    listen = (
        "window.__events = [];"
        "for (const type of ['cardinserted', 'cardremoved', 'sessionended'])"
        "  window.cisAuth.addEventListener(type, e => window.__events.push({type: e.type, detail: e.detail, custom: e instanceof CustomEvent}));"
        "true"
    )
    other = browser.open(site["other"] + "/")
    other.evaluate(listen)
    quiet = browser.open(site["allowed"] + "/")  # listens, never calls
    quiet.evaluate(listen)
    page.evaluate(listen)
    time.sleep(0.5)  # let the listeners' subscriptions reach the background
    outcome = call(page, "getCertificate()")
    assert outcome["code"] == "CARD_REMOVED"
    deadline = time.monotonic() + 5
    while len(page.evaluate("window.__events")) < 2 and time.monotonic() < deadline:
        time.sleep(0.05)
    assert page.evaluate("window.__events") == [
        {"type": "cardremoved", "detail": {"reader": "Virtual PCD 00 00", "atr": None}, "custom": True},
        {"type": "sessionended", "detail": {"reason": "cardRemoved"}, "custom": True},
    ]
    while len(quiet.evaluate("window.__events")) < 2 and time.monotonic() < deadline:
        time.sleep(0.05)
    assert quiet.evaluate("window.__events") == page.evaluate("window.__events")
    assert other.evaluate("window.__events") == []
    other.close()
    quiet.close()
