"""The card through the real host process: frames in, prompts answered, frames out."""

from __future__ import annotations

import base64

import pytest
from cardhelpers import ORIGIN, PIN, verify
from cryptography.hazmat.primitives.serialization import Encoding

from cisbridge.card import softhsm_module

pytestmark = pytest.mark.softhsm


def card_config(label: str | None = "alice", module: str | None = None, extra: str = "") -> str:
    lines = [f'allowed_origins = ["{ORIGIN}"]', "[pkcs11]", f'module = "{module or softhsm_module()}"']
    if label:
        lines.append(f'token_label = "{label}"')
    return "\n".join(lines) + "\n" + extra


@pytest.fixture
def card_host(start_host, stores):
    def start(label: str | None = "alice", conf: str | None = None, **kwargs):
        return start_host(card_config(label, **kwargs), env={"SOFTHSM2_CONF": conf or stores.main})

    return start


def sign_params(*payloads: bytes, algorithm: str = "RS256", ids=None) -> dict:
    ids = ids or [f"rx-{i}" for i in range(len(payloads))]
    return {
        "algorithm": algorithm,
        "payloads": [{"id": i, "payload": base64.b64encode(d).decode()} for i, d in zip(ids, payloads)],
        "description": "Prescriptions for Ms A Patient",
    }


def test_get_certificate_through_the_host(card_host, stores):
    host = card_host()
    result = host.call("getCertificate", timeout=10)["result"]
    assert base64.b64decode(result["certificate"]) == stores.cards["alice"].certificate.public_bytes(Encoding.DER)
    assert result["subject"] == "CN=555000000001,OU=people,O=nhs"
    assert host.prompts == []


@pytest.mark.parametrize("algorithm", ["RS1", "RS256"])
def test_sign_through_the_host_with_consent_and_passcode(card_host, algorithm):
    host = card_host()
    items = [b"<SignedInfo>a</SignedInfo>", b"<SignedInfo>b</SignedInfo>"]
    rid = host.send("sign", sign_params(*items, algorithm=algorithm))
    consent = host.prompt("consent", timeout=10)
    assert consent["for"] == rid
    assert consent["data"] == {
        "origin": ORIGIN, "description": "Prescriptions for Ms A Patient", "count": 2, "algorithm": algorithm,
    }
    host.reply(consent, True)
    pin = host.prompt("pin")
    assert pin["data"] == {"origin": ORIGIN, "protectedPath": False}
    host.reply(pin, PIN)
    result = host.response(rid, timeout=10)["result"]
    assert result["algorithm"] == algorithm and result["failed_signatures"] == []
    cert = base64.b64decode(result["certificate"])
    for sig, data in zip(result["signatures"], items):
        verify(cert, base64.b64decode(sig["signature"]), data, algorithm)


def test_refused_consent_ends_the_request_and_no_passcode_is_asked(card_host):
    host = card_host()
    rid = host.send("sign", sign_params(b"a"))
    host.reply(host.prompt("consent", timeout=10), cancel=True)
    assert host.response(rid)["error"]["code"] == "USER_CANCELLED"
    assert host.prompts == []


def test_wrong_passcode_then_right_one_through_the_host(card_host):
    host = card_host(extra='[logging]\nlevel = "debug"\n')
    rid = host.send("sign", sign_params(b"a"))
    host.reply(host.prompt("consent", timeout=10), True)
    host.reply(host.prompt("pin"), "975319")
    again = host.prompt("pin", timeout=10)
    host.reply(again, PIN)
    result = host.response(rid, timeout=10)["result"]
    assert len(result["signatures"]) == 1
    log = host.log_text()
    assert "prompts for pin" in log, "the debug log was not written where the test looks"
    assert "975319" not in log, "a passcode reached the log"


def test_locked_card_through_the_host(card_host):
    host = card_host("locked")
    rid = host.send("sign", sign_params(b"a"))
    host.reply(host.prompt("consent", timeout=10), True)
    error = host.response(rid, timeout=10)["error"]
    assert error["code"] == "PIN_LOCKED"
    assert error["detail"] == {"attemptsLeft": 0}
    assert host.prompts == []


def test_one_bad_payload_through_the_host(card_host):
    host = card_host()
    rid = host.send("sign", sign_params(b"one", b"", b"three", ids=["1", "2", "3"]))
    host.reply(host.prompt("consent", timeout=10), True)
    host.reply(host.prompt("pin"), PIN)
    result = host.response(rid, timeout=10)["result"]
    assert [s["id"] for s in result["signatures"]] == ["1", "3"]
    assert [(f["id"], f["code"]) for f in result["failed_signatures"]] == [("2", "SIGNING_FAILED")]


def test_invalid_sign_request_is_refused_before_any_prompt(card_host):
    host = card_host()
    params = sign_params(b"a", b"b", ids=["same", "same"])
    error = host.call("sign", params, timeout=10)["error"]
    assert error["code"] == "INVALID_REQUEST" and "unique" in error["message"]
    assert host.prompts == []


def test_cancel_during_the_passcode_prompt_leaves_the_card_logged_out(card_host):
    host = card_host()
    rid = host.send("sign", sign_params(b"a"))
    host.reply(host.prompt("consent", timeout=10), True)
    host.prompt("pin")
    host.call("cancel", {"request": rid})
    assert host.response(rid)["error"]["code"] == "USER_CANCELLED"
    # The next batch asks again: nothing was left logged in.
    rid = host.send("sign", sign_params(b"b"))
    host.reply(host.prompt("consent", timeout=10), True)
    host.reply(host.prompt("pin"), PIN)
    assert len(host.response(rid, timeout=10)["result"]["signatures"]) == 1


def test_several_cards_and_no_label_through_the_host(card_host):
    host = card_host(None)
    error = host.call("getCertificate", timeout=10)["error"]
    assert error["code"] == "NO_CARD"
    assert sorted(error["detail"]["tokens"]) == ["alice", "final", "locked"]


def test_missing_module_through_the_host(card_host, tmp_path):
    missing = str(tmp_path / "opensc-pkcs11.so")
    host = card_host(module=missing)
    error = host.call("getCertificate", timeout=10)["error"]
    assert error["code"] == "AGENT_UNAVAILABLE"
    assert missing in error["message"] and "[pkcs11] module" in error["message"]
    assert "result" in host.call("getStatus")


def test_host_finds_cisbridges_own_softhsm_store_without_softhsm2_conf(start_host, stores, tmp_path):
    """`cisbridge card create` with no store named puts the card in cisbridge's
    user data dir; a host launched by a browser (no SOFTHSM2_CONF) finds it."""
    from cisbridge.card import testcard

    workdir = tmp_path / "host0"  # the start_host fixture's first host
    conf = testcard.make_store(workdir / "xdg-data" / "cisbridge" / "softhsm")
    card = testcard.create(label="own store", pin=PIN, softhsm_conf=conf)
    host = start_host(card_config("own store"), env={"SOFTHSM2_CONF": ""})
    assert host.workdir == workdir
    result = host.call("getCertificate", timeout=10)["result"]
    assert result["subject"] == f"CN={card.uuid},OU=people,O=nhs"


def sign_with_prompts(host, payload: bytes, pin: str | None) -> tuple[dict, list[str]]:
    """Sign one payload, answering consent and (if asked) the passcode; returns
    the response and the kinds of prompt seen."""
    rid = host.send("sign", sign_params(payload))
    kinds = []
    while True:
        frame = host.wait(lambda: host.prompts.pop(0) if host.prompts else host.responses.pop(rid, None), 10)
        if "prompt" not in frame:
            return frame, kinds
        kinds.append(frame["kind"])
        host.reply(frame, True if frame["kind"] == "consent" else pin)


def test_every_batch_asks_for_the_passcode_by_default(card_host):
    host = card_host()
    for payload in (b"first", b"second"):
        response, kinds = sign_with_prompts(host, payload, PIN)
        assert "result" in response and kinds == ["consent", "pin"]


def test_reuse_login_config_keeps_the_card_logged_in_for_the_next_batch(card_host):
    host = card_host(extra="reuse_login = true\n")
    response, kinds = sign_with_prompts(host, b"first", PIN)
    assert "result" in response and kinds == ["consent", "pin"]
    response, kinds = sign_with_prompts(host, b"second", PIN)
    assert "result" in response and kinds == ["consent"]


def test_concurrent_batches_each_log_in_for_themselves(card_host):
    host = card_host()
    first = host.send("sign", sign_params(b"first"))
    second = host.send("sign", sign_params(b"second"))
    consents = [host.prompt("consent", timeout=10), host.prompt("consent", timeout=10)]
    assert {c["for"] for c in consents} == {first, second}
    for consent in consents:
        host.reply(consent, True)
    # Each batch is asked for its own passcode: neither signs on the other's
    # login (card.batch_lock serialises them; by design the second is asked
    # once the first is done, which this test does not time).
    pin = host.prompt("pin", timeout=10)
    owner = pin["for"]
    other = second if owner == first else first
    host.reply(pin, PIN)
    assert "result" in host.response(owner, timeout=10)
    pin = host.prompt("pin", timeout=10)
    assert pin["for"] == other
    host.reply(pin, PIN)
    assert "result" in host.response(other, timeout=10)
