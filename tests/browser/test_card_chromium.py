"""The whole path with a real (software) smartcard: page -> extension ->
prompt windows -> real host -> SoftHSM2 token -> page, in headless Chromium."""

from __future__ import annotations

import base64
import json

import pytest
from cryptography import x509
from cryptography.hazmat.primitives import hashes
from cryptography.hazmat.primitives.asymmetric import padding

from browser_support import PIN, Browser, call, finish, start, text

pytestmark = [pytest.mark.browser, pytest.mark.softhsm]

PASSCODE = PIN  # the shared cards' passcode


@pytest.fixture(scope="module")
def card(cards):
    """The one-role card of the shared SoftHSM2 store (conftest.cards)."""
    return dict(cards, certificate=cards["certificates"]["one"])


@pytest.fixture(scope="module")
def browser(site, card, tmp_path_factory):
    workdir = tmp_path_factory.mktemp("chromium-card")
    config = (
        f'allowed_origins = ["{site["allowed"]}"]\n\n[agent]\nkind = "none"\n\n'
        f'[pkcs11]\nmodule = "{card["module"]}"\ntoken_label = "one"\n'
    )
    b = Browser(workdir, config, host_env={"SOFTHSM2_CONF": card["conf"]})
    yield b
    b.close()


@pytest.fixture
def page(browser, site):
    page = browser.open(site["allowed"] + "/")
    yield page
    page.close()
    browser.wait_no_prompt()


def test_certificate_comes_from_the_card_without_any_prompt(browser, page, card):
    outcome = call(page, "getCertificate()")
    assert outcome["ok"], outcome
    assert outcome["value"]["certificate"] == card["certificate"]
    assert outcome["value"]["subject"] == "CN=555000000001,OU=people,O=nhs"
    assert browser.prompt_windows() == []


def test_a_batch_is_signed_by_the_card_after_consent_and_one_passcode(browser, page, site, card):
    items = [b"<SignedInfo>rx-1</SignedInfo>", b"<SignedInfo>rx-2</SignedInfo>"]
    payloads = [{"id": f"rx-{i}", "payload": base64.b64encode(d).decode()} for i, d in enumerate(items)]
    start(page, f"sign({json.dumps({'algorithm': 'RS256', 'description': 'Prescriptions for Ms A Patient', 'payloads': payloads})})")

    consent = browser.wait_prompt()
    assert [text(consent, i) for i in ("origin", "consent-description", "consent-count")] == [
        site["allowed"], "Prescriptions for Ms A Patient", "2",
    ]
    consent.press("Tab")
    consent.press("Enter")

    pin = browser.wait_prompt(seen={consent.target_id})
    pin.type("9999")  # wrong: the host asks again, in a new window
    pin.press("Enter")
    again = browser.wait_prompt(seen={consent.target_id, pin.target_id})
    again.type(PASSCODE)
    again.press("Enter")

    outcome = finish(page)
    assert outcome["ok"], outcome
    result = outcome["value"]
    assert result["certificate"] == card["certificate"] and result["failed_signatures"] == []
    key = x509.load_der_x509_certificate(base64.b64decode(card["certificate"])).public_key()
    assert [s["id"] for s in result["signatures"]] == ["rx-0", "rx-1"]
    for signature, data in zip(result["signatures"], items):
        key.verify(base64.b64decode(signature["signature"]), data, padding.PKCS1v15(), hashes.SHA256())


def test_declining_consent_signs_nothing(browser, page):
    start(page, "sign({algorithm: 'RS1', payloads: [{id: 'a', payload: 'AAEC'}]})")
    consent = browser.wait_prompt()
    assert consent.evaluate("document.activeElement.textContent") == "Cancel"
    consent.press("Enter")  # Enter on the focused Cancel
    assert finish(page)["code"] == "USER_CANCELLED"
