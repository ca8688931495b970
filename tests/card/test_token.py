"""The PKCS#11 token on SoftHSM2: which token, passcode flags, login, signing."""

from __future__ import annotations

import hashlib

import pytest
from cardhelpers import PIN, verify
from cryptography import x509

from cisbridge.card.token import CardToken
from cisbridge.protocol import CisError, ErrorCode

pytestmark = pytest.mark.softhsm


# ------------------------------------------------------------ choosing the token


def test_label_chooses_the_token_and_its_certificate(open_card, stores):
    card = open_card("alice")
    assert card.chosen_label is None, "nothing is read from the card before it is used"
    assert card.status().label == "alice"
    assert card.chosen_label == "alice"
    cert = x509.load_der_x509_certificate(card.certificate())
    assert cert.subject.rfc4514_string() == "CN=555000000001,OU=people,O=nhs"
    assert cert == stores.cards["alice"].certificate


def test_without_a_label_the_only_paired_token_is_used(open_card, stores, tmp_path):
    conf = _store_with_one(tmp_path, stores)
    card = open_card(None, conf=conf)
    assert card.status().label == "solo"


def _store_with_one(tmp_path, stores) -> str:
    from cisbridge.card import testcard

    conf = testcard.make_store(tmp_path / "solo")
    testcard.create(label="solo", pin=PIN, softhsm_conf=conf)
    return conf


def test_several_candidates_without_a_label_is_an_error_listing_them(open_card):
    card = open_card(None)
    with pytest.raises(CisError) as caught:
        card.status()
    assert caught.value.code == ErrorCode.NO_CARD
    assert "[pkcs11] token_label" in caught.value.message
    assert sorted(caught.value.detail["tokens"]) == ["alice", "final", "locked"]


def test_a_label_that_is_not_there_says_which_cards_are(open_card):
    card = open_card("bob")
    with pytest.raises(CisError) as caught:
        card.certificate()
    assert caught.value.code == ErrorCode.NO_CARD
    assert "'bob'" in caught.value.message and "'alice'" in caught.value.message


def test_no_token_at_all_is_no_card(open_card, stores):
    card = open_card(None, conf=stores.empty)
    with pytest.raises(CisError) as caught:
        card.certificate()
    assert caught.value.code == ErrorCode.NO_CARD


def test_a_token_without_a_certificate_is_no_certificate(open_card, stores):
    card = open_card(None, conf=stores.nocert)
    with pytest.raises(CisError) as caught:
        card.certificate()
    assert caught.value.code == ErrorCode.NO_CERTIFICATE
    assert caught.value.detail["tokens"] == ["bare"]


def test_a_module_that_cannot_load_names_the_path_and_the_config_key(tmp_path):
    missing = str(tmp_path / "no-such-pkcs11.so")
    card = CardToken(missing)
    with pytest.raises(CisError) as caught:
        card.status()
    assert caught.value.code == ErrorCode.AGENT_UNAVAILABLE
    assert missing in caught.value.message
    assert "[pkcs11] module" in caught.value.message
    assert caught.value.detail == {"module": missing, "configKey": "pkcs11.module"}


# ------------------------------------------------------------------ passcode


def test_locked_card_reports_locked_and_is_never_tried(open_card, stores):
    card = open_card("locked")
    status = card.status()
    assert status.pin_locked and status.attempts_left == 0
    pin = bytearray(PIN, "ascii")
    with pytest.raises(CisError) as caught:
        card.login(pin)
    assert caught.value.code == ErrorCode.PIN_LOCKED
    # SoftHSM would accept this passcode (it does not enforce the flag):
    # had login tried it, the card would now be logged in.
    assert not card.begin_batch().logged_in
    assert pin == bytearray(len(PIN))


def test_final_try_is_reported_as_one_attempt_left(open_card):
    card = open_card("final")
    status = card.status()
    assert status.pin_final_try and status.attempts_left == 1
    with pytest.raises(CisError) as caught:
        card.login(bytearray(b"9999"))
    assert caught.value.code == ErrorCode.PIN_INCORRECT
    assert caught.value.detail == {"attemptsLeft": 1}
    assert "lock" in caught.value.message


def test_wrong_passcode_is_pin_incorrect_then_right_one_logs_in(open_card):
    card = open_card("alice")
    wrong = bytearray(b"0000")
    with pytest.raises(CisError) as caught:
        card.login(wrong)
    assert caught.value.code == ErrorCode.PIN_INCORRECT
    assert wrong == bytearray(4), "the passcode buffer is wiped after a failed login"
    assert card.status().pin_count_low
    right = bytearray(PIN, "ascii")
    card.login(right)
    assert right == bytearray(4), "the passcode buffer is wiped after login"
    assert card.begin_batch().logged_in
    assert not card.status().pin_count_low


def test_passcode_is_not_in_the_error(open_card):
    card = open_card("alice")
    with pytest.raises(CisError) as caught:
        card.login(bytearray(b"8642"))
    text = f"{caught.value!r} {caught.value} {caught.value.detail}"
    assert "8642" not in text


def test_every_batch_logs_in_again_unless_reuse_login(open_card):
    card = open_card("alice")
    card.login(bytearray(PIN, "ascii"))
    card.end_batch()
    assert not card.begin_batch().logged_in
    with pytest.raises(CisError) as caught:
        card.sign_many("RS256", [b"x"])
    assert caught.value.code == ErrorCode.CARD_REMOVED

    reusing = open_card("alice", reuse_login=True)
    reusing.login(bytearray(PIN, "ascii"))
    reusing.end_batch()
    assert reusing.begin_batch().logged_in
    assert len(reusing.sign_many("RS256", [b"x"])[0]) == 256


# ------------------------------------------------------------------- signing


@pytest.mark.parametrize("algorithm", ["RS1", "RS256"])
def test_signatures_verify_against_the_certificate(open_card, algorithm):
    card = open_card("alice")
    card.login(bytearray(PIN, "ascii"))
    data = [b"<SignedInfo>one</SignedInfo>", b"<SignedInfo>two</SignedInfo>"]
    signatures = card.sign_many(algorithm, data)
    for sig, item in zip(signatures, data):
        verify(card.certificate(), sig, item, algorithm)


@pytest.mark.parametrize("algorithm", ["RS1", "RS256"])
def test_raw_rsa_over_digestinfo_when_the_combined_mechanism_is_missing(open_card, algorithm):
    from cisbridge.card.token import ALGORITHMS

    combined = ALGORITHMS[algorithm][0]
    plain = open_card("alice")
    plain.login(bytearray(PIN, "ascii"))
    expected = plain.sign_many(algorithm, [b"payload"])[0]
    plain.end_batch()

    fallback = open_card("alice", disabled_mechanisms=(combined,))
    fallback.login(bytearray(PIN, "ascii"))
    got = fallback.sign_many(algorithm, [b"payload"])[0]
    assert combined not in fallback._choice.mechanisms
    verify(fallback.certificate(), got, b"payload", algorithm)
    assert got == expected  # PKCS#1 v1.5 is deterministic: same bytes either way


def test_the_private_key_cannot_be_read_off_the_card(open_card):
    import pkcs11
    from pkcs11 import Attribute, ObjectClass

    card = open_card("alice")
    card.login(bytearray(PIN, "ascii"))
    key = card._session.get_key(object_class=ObjectClass.PRIVATE_KEY, id=card._choice.key_id)
    assert key[Attribute.SENSITIVE] and not key[Attribute.EXTRACTABLE]
    with pytest.raises(pkcs11.exceptions.AttributeSensitive):
        key[Attribute.PRIVATE_EXPONENT]
    assert key[Attribute.ID] == hashlib.sha1(key[Attribute.MODULUS]).digest()


def test_card_gone_after_login_is_card_removed_and_the_session_is_dropped(open_card, tmp_path, stores):
    from cisbridge.card import testcard

    conf = testcard.make_store(tmp_path / "removable")
    testcard.create(label="removable", pin=PIN, softhsm_conf=conf)
    card = open_card("removable", conf=conf)
    card.login(bytearray(PIN, "ascii"))
    # Deleting the token re-initialises SoftHSM here: the session handle dies
    # and the token is gone, as when a card leaves its reader.
    testcard.delete("removable", softhsm_conf=conf)
    with pytest.raises(CisError) as caught:
        card.sign_many("RS256", [b"x"])
    assert caught.value.code == ErrorCode.CARD_REMOVED
    assert card._session is None


def test_card_removed_event_ends_the_login(open_card):
    card = open_card("alice", reuse_login=True)
    card.login(bytearray(PIN, "ascii"))
    card.card_removed()
    with pytest.raises(CisError) as caught:
        card.sign_many("RS256", [b"x"])
    assert caught.value.code == ErrorCode.CARD_REMOVED
    assert not card.begin_batch().logged_in


def test_card_removed_never_waits_for_a_card_call_in_progress(open_card):
    import threading

    card = open_card("alice", reuse_login=True)
    card.login(bytearray(PIN, "ascii"))
    busy, done = threading.Event(), threading.Event()

    def card_call_in_progress():
        with card._lock:  # what a long batch holds
            busy.set()
            done.wait(10)

    worker = threading.Thread(target=card_call_in_progress)
    worker.start()
    busy.wait(10)
    notifier = threading.Thread(target=card.card_removed)
    notifier.start()
    notifier.join(5)
    blocked = notifier.is_alive()
    done.set()
    worker.join()
    notifier.join()
    assert not blocked, "card_removed waited for the card lock"
    # The login made before the removal is void: the next batch cannot use it.
    with pytest.raises(CisError) as caught:
        card.sign_many("RS256", [b"x"])
    assert caught.value.code == ErrorCode.CARD_REMOVED
    assert not card.begin_batch().logged_in
