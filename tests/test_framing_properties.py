"""Property tests: framing and decoding survive anything a browser pipe can carry."""

from __future__ import annotations

import json

import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from cisbridge import protocol as p
from cisbridge.framing import FrameDecoder, Oversize, frame, leading_id

payloads = st.lists(st.binary(max_size=300), max_size=12)


def chunked(data: bytes, cuts: list[int]) -> list[bytes]:
    points = sorted({c % (len(data) + 1) for c in cuts})
    pieces, last = [], 0
    for point in points + [len(data)]:
        pieces.append(data[last:point])
        last = point
    return pieces


@given(payloads, st.lists(st.integers(min_value=0, max_value=10_000), max_size=30), st.integers(min_value=0, max_value=400))
def test_any_split_of_a_frame_stream_gives_back_the_same_frames(items, cuts, limit):
    stream = b"".join(frame(x) for x in items)
    decoder = FrameDecoder(limit)
    got = []
    for piece in chunked(stream, cuts):
        got.extend(decoder.feed(piece))
    expected = [x if len(x) <= limit else Oversize(len(x), x[:512]) for x in items]
    assert got == expected
    assert not decoder.partial


@given(payloads)
def test_a_byte_at_a_time(items):
    stream = b"".join(frame(x) for x in items)
    decoder = FrameDecoder(200)
    got = []
    for i in range(len(stream)):
        got.extend(decoder.feed(stream[i : i + 1]))
    assert [g if isinstance(g, bytes) else g.size for g in got] == [x if len(x) <= 200 else len(x) for x in items]


@given(st.binary(max_size=2000))
def test_random_bytes_never_raise(data):
    decoder = FrameDecoder(1000)
    for item in decoder.feed(data):
        assert isinstance(item, bytes | Oversize)


@given(st.integers(min_value=2**20, max_value=2**32 - 1), st.binary(max_size=100))
def test_huge_declared_lengths_are_not_buffered(size, rest):
    decoder = FrameDecoder(4096)
    assert decoder.feed(size.to_bytes(4, "little") + rest) == []
    assert decoder.partial
    assert len(decoder._buf) == 0  # nothing of the oversize frame is kept but its prefix


def test_frames_after_an_oversize_frame_are_decoded():
    decoder = FrameDecoder(10)
    stream = frame(b"x" * 50) + frame(b"ok")
    got = decoder.feed(stream[:20]) + decoder.feed(stream[20:])
    assert got == [Oversize(50, b"x" * 50), b"ok"]


json_values = st.recursive(
    st.none() | st.booleans() | st.integers() | st.floats(allow_nan=False) | st.text(max_size=20),
    lambda children: st.lists(children, max_size=4) | st.dictionaries(st.text(max_size=10), children, max_size=4),
    max_leaves=20,
)
request_like = st.fixed_dictionaries(
    {},
    optional={
        "id": json_values,
        "method": st.sampled_from(["getTicket", "getTicketNoAuth", "getCertificate", "sign", "getStatus", "promptReply", "cancel", "x"]),
        "origin": st.text(max_size=40) | json_values,
        "params": json_values,
    },
)


@given(st.binary(max_size=500))
def test_decoding_random_bytes_fails_only_with_invalid_request(data):
    try:
        p.decode_request(data)
    except p.CisError as exc:
        assert exc.code is p.ErrorCode.INVALID_REQUEST
    p.salvage_id(data)


@given(json_values | request_like)
def test_decoding_random_json_fails_only_with_invalid_request(value):
    data = json.dumps(value).encode()
    try:
        p.decode_request(data)
    except p.CisError as exc:
        assert exc.code is p.ErrorCode.INVALID_REQUEST
        assert len(exc.message) <= 500


@pytest.mark.parametrize(
    "prefix, expected",
    [
        (b'{"id": 12, "method"', 12),
        (b'{"id":"abc","method"', "abc"),
        (b' { "id" : -3 }', -3),
        (b'{"method": "sign", "id": 4,', None),  # not first: could be nested, not trusted
        (b'{"params": {"payloads": [{"id": "p1",', None),
        (b'{"id": 99999999999999999, "m', None),
        (b'{"id": true,', None),
    ],
)
def test_leading_id_reads_only_a_first_top_level_id(prefix, expected):
    assert leading_id(prefix) == expected


@pytest.fixture(scope="module")
def shared_host(tmp_path_factory):
    from hostclient import Host

    host = Host(tmp_path_factory.mktemp("fuzz"))
    yield host
    host.stop()


@settings(max_examples=150, deadline=None, suppress_health_check=[HealthCheck.function_scoped_fixture])
@given(st.binary(max_size=300) | (json_values | request_like).map(lambda v: json.dumps(v).encode()))
def test_the_real_host_answers_any_frame_exactly_once_and_keeps_serving(shared_host, payload):
    shared_host.send_frame(payload)
    reply = shared_host.next_frame()
    assert ("result" in reply) != ("error" in reply)
    shared_host.send_frame(json.dumps({"id": "probe", "method": "getStatus", "origin": "https://ehr.example.nhs.uk"}).encode())
    probe = shared_host.next_frame()
    assert probe["id"] == "probe" and "result" in probe
