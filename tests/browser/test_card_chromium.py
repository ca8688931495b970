"""The whole path with a real (software) smartcard: page -> extension ->
prompt windows -> real host -> SoftHSM2 token -> page, in headless Chromium."""

from __future__ import annotations

import base64
import json
import os
import subprocess
import sys

import pytest
from cryptography import x509
from cryptography.hazmat.primitives import hashes
from cryptography.hazmat.primitives.asymmetric import padding

from conftest import Browser, call, finish, start, text

pytestmark = [pytest.mark.browser, pytest.mark.softhsm]

PASSCODE = "1234"

MAKE_CARD = """
import base64, json, sys
from cryptography.hazmat.primitives.serialization import Encoding
from cisbridge.card import softhsm_module, testcard
conf = testcard.make_store(sys.argv[1])
card = testcard.create(label="alice", pin=sys.argv[2], uuid="555000000001", softhsm_conf=conf)
print(json.dumps({"conf": conf, "module": softhsm_module(),
                  "certificate": base64.b64encode(card.certificate.public_bytes(Encoding.DER)).decode()}))
"""


@pytest.fixture(scope="module")
def card(tmp_path_factory):
    work = tmp_path_factory.mktemp("card")
    # In a child process, so this process's SoftHSM state stays as the card tests left it.
    made = subprocess.run(
        [sys.executable, "-c", MAKE_CARD, str(work / "softhsm"), PASSCODE],
        env=dict(os.environ, CISBRIDGE_TESTCA_DIR=str(work / "testca")), capture_output=True, text=True, timeout=120,
    )
    if made.returncode != 0:
        pytest.fail(f"could not make the test card: {made.stderr[-2000:]}")
    return json.loads(made.stdout.strip().splitlines()[-1])


@pytest.fixture(scope="module")
def browser(site, card, tmp_path_factory):
    workdir = tmp_path_factory.mktemp("chromium-card")
    config = (
        f'allowed_origins = ["{site["allowed"]}"]\n\n[agent]\nkind = "none"\n\n'
        f'[pkcs11]\nmodule = "{card["module"]}"\ntoken_label = "alice"\n'
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
