"""sign's request validation on its own (no card): decoding is checking."""

from __future__ import annotations

import base64
import binascii

from hypothesis import given
from hypothesis import strategies as st

from cisbridge import protocol as p
from cisbridge.actions import sign as sign_action
from cisbridge.protocol import CisError, ErrorCode

ids = st.text(min_size=1, max_size=128)
payload_text = st.one_of(
    st.binary(max_size=300).map(lambda b: base64.b64encode(b).decode()),
    st.text(max_size=40),  # mostly not base64
)


@given(st.lists(st.tuples(ids, payload_text), max_size=20))
def test_validate_accepts_exactly_unique_ids_with_strict_base64(items):
    params = p.SignParams(algorithm="RS256", payloads=[p.SignPayload(i, t) for i, t in items])
    expected_ok = bool(items) and len({i for i, _ in items}) == len(items)
    decoded = []
    for _, text in items:
        try:
            decoded.append(base64.b64decode(text, validate=True))
        except (binascii.Error, ValueError):
            expected_ok = False
    try:
        got = sign_action.validate(params)
    except CisError as exc:
        assert exc.code == ErrorCode.INVALID_REQUEST
        assert not expected_ok, exc.message
    else:
        assert expected_ok
        assert got == decoded


def test_limits_keep_every_answer_under_one_mebibyte():
    assert sign_action.answer_bound() < p.MAX_OUTGOING


def test_validation_errors_name_the_payload():
    params = p.SignParams(algorithm="RS1", payloads=[p.SignPayload("ok", "YQ=="), p.SignPayload("rx-2", "@@@")])
    try:
        sign_action.validate(params)
    except CisError as exc:
        assert "payloads[1]" in exc.message and "'rx-2'" in exc.message
    else:
        raise AssertionError("invalid base64 was accepted")
