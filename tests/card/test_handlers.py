"""getCertificate and sign handlers on SoftHSM2, with the test playing the user.

ScriptedContext answers the prompts in order; it is the test's driver, the
card is real.  The same behaviour through the real host is in test_host_card.py.
"""

from __future__ import annotations

import base64

import pytest
from cardhelpers import CANCEL, ORIGIN, PIN, ScriptedContext, run, verify
from cryptography.hazmat.primitives.serialization import Encoding

from cisbridge import protocol as p
from cisbridge.actions import sign as sign_action
from cisbridge.actions.certificate import get_certificate
from cisbridge.card.auth import MAX_PIN_PROMPTS, sign_challenge
from cisbridge.protocol import CisError, ErrorCode

pytestmark = pytest.mark.softhsm


def request(*payloads: bytes, algorithm: str = "RS256", ids=None, description=None) -> p.SignParams:
    ids = ids or [f"rx-{i}" for i in range(len(payloads))]
    return p.SignParams(
        algorithm=algorithm,
        payloads=[p.SignPayload(id=i, payload=base64.b64encode(d).decode()) for i, d in zip(ids, payloads)],
        description=description,
    )


def test_get_certificate_describes_the_card_certificate(open_card, stores):
    ctx = ScriptedContext(open_card("alice"))
    result = run(get_certificate(ctx, p.NoParams()))
    cert = stores.cards["alice"].certificate
    assert base64.b64decode(result.certificate) == cert.public_bytes(Encoding.DER)
    assert result.subject == "CN=555000000001,OU=people,O=nhs"
    assert result.issuer == cert.issuer.rfc4514_string()
    assert int(result.serialNumber, 16) == cert.serial_number
    assert result.notBefore.endswith("Z") and result.notAfter > result.notBefore
    assert ctx.prompts == [], "no passcode needed for the certificate"


@pytest.mark.parametrize("algorithm", ["RS1", "RS256"])
def test_batch_is_signed_after_one_consent_and_one_passcode(open_card, algorithm):
    ctx = ScriptedContext(open_card("alice"), [("consent", True), ("pin", PIN)])
    items = [b"<SignedInfo>%d</SignedInfo>" % i for i in range(5)]
    result = run(sign_action.sign(ctx, request(*items, algorithm=algorithm, description="5 prescriptions")))
    assert ctx.kinds() == ["consent", "pin"]
    assert ctx.prompts[0][1] == p.ConsentPromptData(ORIGIN, "5 prescriptions", 5, algorithm)
    assert ctx.prompts[1][1] == p.PinPromptData(origin=ORIGIN, protectedPath=False)
    assert result.algorithm == algorithm and result.failed_signatures == []
    assert [s.id for s in result.signatures] == [f"rx-{i}" for i in range(5)]
    cert = base64.b64decode(result.certificate)
    for s, data in zip(result.signatures, items):
        verify(cert, base64.b64decode(s.signature), data, algorithm)


def test_refused_consent_is_user_cancelled_and_no_passcode_is_asked(open_card):
    ctx = ScriptedContext(open_card("alice"), [("consent", CANCEL)])
    with pytest.raises(CisError) as caught:
        run(sign_action.sign(ctx, request(b"a")))
    assert caught.value.code == ErrorCode.USER_CANCELLED
    assert ctx.kinds() == ["consent"]


def test_wrong_passcode_reprompts_then_the_right_one_signs(open_card):
    ctx = ScriptedContext(open_card("alice"), [("consent", True), ("pin", "0000"), ("pin", PIN)])
    result = run(sign_action.sign(ctx, request(b"a")))
    assert ctx.kinds() == ["consent", "pin", "pin"]
    assert len(result.signatures) == 1


def test_wrong_passcode_every_time_ends_with_pin_incorrect(open_card):
    answers = [("consent", True)] + [("pin", "0000")] * MAX_PIN_PROMPTS
    ctx = ScriptedContext(open_card("alice"), answers)
    with pytest.raises(CisError) as caught:
        run(sign_action.sign(ctx, request(b"a")))
    assert caught.value.code == ErrorCode.PIN_INCORRECT
    assert ctx.kinds().count("pin") == MAX_PIN_PROMPTS


def test_final_try_prompt_says_one_attempt_left_and_so_does_the_error(open_card):
    answers = [("consent", True)] + [("pin", "0000")] * MAX_PIN_PROMPTS
    ctx = ScriptedContext(open_card("final"), answers)
    with pytest.raises(CisError) as caught:
        run(sign_action.sign(ctx, request(b"a")))
    assert ctx.prompts[1][1].attemptsLeft == 1
    assert caught.value.code == ErrorCode.PIN_INCORRECT
    assert caught.value.detail == {"attemptsLeft": 1}


def test_empty_passcode_is_asked_again_without_trying_the_card(open_card):
    card = open_card("alice")
    ctx = ScriptedContext(card, [("consent", True), ("pin", ""), ("pin", PIN)])
    run(sign_action.sign(ctx, request(b"a")))
    assert ctx.kinds() == ["consent", "pin", "pin"]
    assert not card.status().pin_count_low, "an empty passcode must not spend a try"


def test_locked_card_is_pin_locked_without_a_passcode_prompt(open_card):
    ctx = ScriptedContext(open_card("locked"), [("consent", True)])
    with pytest.raises(CisError) as caught:
        run(sign_action.sign(ctx, request(b"a")))
    assert caught.value.code == ErrorCode.PIN_LOCKED
    assert ctx.kinds() == ["consent"]


def test_pin_pad_reader_gets_a_protected_path_prompt_and_no_passcode(open_card, stores):
    card = open_card(None, conf=stores.pinpad)
    ctx = ScriptedContext(card, [("consent", True), ("pin", "")])
    with pytest.raises(CisError) as caught:
        run(sign_action.sign(ctx, request(b"a")))
    assert ctx.prompts[1][1] == p.PinPromptData(origin=ORIGIN, protectedPath=True)
    # The login went to the card with no passcode (C_Login with NULL): SoftHSM
    # has no PIN pad to collect one, so it refuses, as it should.
    assert caught.value.code == ErrorCode.AUTHENTICATION_FAILED
    assert "ArgumentsBad" in caught.value.message


def test_cancelled_passcode_prompt_is_user_cancelled_and_logs_nothing_in(open_card):
    card = open_card("alice")
    ctx = ScriptedContext(card, [("consent", True), ("pin", CANCEL)])
    with pytest.raises(CisError) as caught:
        run(sign_action.sign(ctx, request(b"a")))
    assert caught.value.code == ErrorCode.USER_CANCELLED
    assert not card.begin_batch().logged_in


def test_one_bad_payload_fails_alone_and_the_others_are_signed(open_card):
    ctx = ScriptedContext(open_card("alice"), [("consent", True), ("pin", PIN)])
    result = run(sign_action.sign(ctx, request(b"first", b"", b"third", ids=["a", "empty", "c"])))
    assert [s.id for s in result.signatures] == ["a", "c"]
    assert [(f.id, f.code) for f in result.failed_signatures] == [("empty", ErrorCode.SIGNING_FAILED)]
    cert = base64.b64decode(result.certificate)
    verify(cert, base64.b64decode(result.signatures[1].signature), b"third", "RS256")


def test_each_batch_asks_for_the_passcode_again_by_default(open_card):
    card = open_card("alice")
    for _ in range(2):
        ctx = ScriptedContext(card, [("consent", True), ("pin", PIN)])
        run(sign_action.sign(ctx, request(b"a")))
        assert ctx.kinds() == ["consent", "pin"]


def test_reuse_login_skips_the_passcode_on_the_next_batch(open_card):
    card = open_card("alice", reuse_login=True)
    run(sign_action.sign(ScriptedContext(card, [("consent", True), ("pin", PIN)]), request(b"a")))
    ctx = ScriptedContext(card, [("consent", True)])
    result = run(sign_action.sign(ctx, request(b"b")))
    assert ctx.kinds() == ["consent"] and len(result.signatures) == 1


# ---------------------------------------------------------------- validation

def b64(n: int) -> str:
    return base64.b64encode(b"x" * n).decode()


INVALID = {
    "empty batch": p.SignParams(algorithm="RS256", payloads=[]),
    "duplicate ids": p.SignParams(algorithm="RS256", payloads=[p.SignPayload("a", b64(3)), p.SignPayload("a", b64(3))]),
    "not base64": p.SignParams(algorithm="RS256", payloads=[p.SignPayload("a", "not base64!")]),
    "bad padding": p.SignParams(algorithm="RS256", payloads=[p.SignPayload("a", "abc")]),
    "payload too large": p.SignParams(
        algorithm="RS256", payloads=[p.SignPayload("a", b64(sign_action.MAX_PAYLOAD_BYTES + 1))]
    ),
    "too many payloads": p.SignParams(
        algorithm="RS256", payloads=[p.SignPayload(str(i), b64(3)) for i in range(sign_action.MAX_BATCH + 1)]
    ),
}


@pytest.mark.parametrize("case", INVALID)
def test_invalid_requests_are_refused_before_any_prompt(open_card, case):
    ctx = ScriptedContext(open_card("alice"))
    with pytest.raises(CisError) as caught:
        run(sign_action.sign(ctx, INVALID[case]))
    assert caught.value.code == ErrorCode.INVALID_REQUEST
    assert ctx.prompts == []


def test_the_largest_answer_stays_under_the_browsers_frame_limit():
    # The bound is computed, so check it is a bound: build the worst answer.
    worst_id = "\x01" * 128
    result = p.ResultFrame(
        worst_id,
        p.SignResult(
            certificate=base64.b64encode(b"c" * sign_action.MAX_CERTIFICATE_BYTES).decode(),
            signatures=[
                p.Signature(worst_id, base64.b64encode(b"s" * sign_action.MAX_SIGNATURE_BYTES).decode())
            ] * sign_action.MAX_BATCH,
            failed_signatures=[],
            algorithm="RS256",
        ),
    )
    size = len(p.encode(result))
    assert size <= sign_action.answer_bound() < p.MAX_OUTGOING


# ------------------------------------------------------------ the GAS agent's path

def test_gas_challenge_is_signed_with_sha1_after_the_passcode(open_card):
    card = open_card("alice")
    ctx = ScriptedContext(card, [("pin", "0000"), ("pin", PIN)])
    signature, cert = run(sign_challenge(ctx, b"challenge bytes"))
    assert ctx.kinds() == ["pin", "pin"]
    verify(cert, signature, b"challenge bytes", "RS1")
    assert not card.begin_batch().logged_in
