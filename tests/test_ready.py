"""The ``ready`` frame is encoded without json (imported only after it), so
its encoder is checked against json itself: any agent kind a TOML file can
hold, any origin, comes back from json.loads as it went in."""

from __future__ import annotations

import json
import os

from hypothesis import example, given
from hypothesis import strategies as st

from cisbridge import PROTOCOL, __version__
from cisbridge.framing import HEADER
from cisbridge.host import _Pipe, _write_ready


def ready_through_a_pipe(agent: str, allowed: list[str]) -> bytes:
    read_fd, write_fd = os.pipe()
    try:
        _write_ready(_Pipe(write_fd), agent, allowed)
        os.close(write_fd)
        data = b""
        while chunk := os.read(read_fd, 1 << 16):
            data += chunk
        return data
    finally:
        os.close(read_fd)


#: text as TOML can hold it (no surrogates), and anything a str can hold
texts = st.one_of(st.text(), st.text(alphabet=st.characters(codec="utf-8")),
                  st.text(alphabet='"\\/\x00\x01\x1f\x7f\x80\u2028\u2029\ufeff\U0001f600\ud800\udfff', max_size=20))


@given(texts, st.lists(texts, max_size=4))
@example('"}],"event":"x', [])
@example("\\", ["\n"])
@example("none\x00", ["https://ehr.example.nhs.uk"])
@example("\ud800", ["\udfff\ud83d"])
def test_ready_is_json_whatever_the_strings(agent, allowed):
    data = ready_through_a_pipe(agent, allowed)
    (size,) = HEADER.unpack(data[:4])
    assert size == len(data) - 4
    payload = data[4:].decode("utf-8")  # strict: no lone surrogate was written raw
    ready = {"event": "ready", "data": {"version": __version__, "protocol": PROTOCOL, "agent": agent, "allowedOrigins": allowed}}
    # What json.dumps (the encoder before) would have said.  The same as
    # ``ready`` except for surrogates, which TOML cannot hold: escaped, a pair
    # of them reads back as the one character it encodes.
    assert json.loads(payload) == json.loads(json.dumps(ready))
    if not any("\ud800" <= c <= "\udfff" for c in agent + "".join(allowed)):
        assert json.loads(payload) == ready


def test_plain_strings_are_written_as_themselves():
    data = ready_through_a_pipe("gas", ["https://ehr.example.nhs.uk"])
    assert data[4:] == (
        b'{"event":"ready","data":{"version":"' + __version__.encode() + b'","protocol":1,"agent":"gas",'
        b'"allowedOrigins":["https://ehr.example.nhs.uk"]}}'
    )


def test_non_ascii_is_utf8_and_controls_are_escaped():
    data = ready_through_a_pipe("d\u00e9mo\n\"x\"", [])
    assert '"agent":"d\u00e9mo\\u000a\\"x\\""'.encode() in data
