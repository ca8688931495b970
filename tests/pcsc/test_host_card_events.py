"""Card events and reader status through the real host process (its reader
monitor on the private pcscd: the host inherits PCSCLITE_CSOCK_NAME)."""

from __future__ import annotations

import time

from support.pcsc import DEFAULT_ATR, READER, SECOND_READER

ATR = DEFAULT_ATR.hex().upper()


def _status(host) -> dict:
    return host.call("getStatus")["result"]


def test_get_status_lists_readers_from_the_first_call(pcscd, host):
    status = _status(host)
    assert status.get("pcsc", "ok") == "ok"  # "ok" is the default, left out on the wire
    assert status["readers"] == [
        {"name": READER, "cardPresent": False},
        {"name": SECOND_READER, "cardPresent": False},
    ]
    assert status["cardPresent"] is False


def test_card_events_reach_the_page_side_and_status_follows(pcscd, host, card):
    _status(host)  # the host watches readers from the first allowed request
    card.insert()
    assert host.event("cardInserted")["data"] == {"reader": READER, "atr": ATR}
    status = _status(host)
    assert status["cardPresent"] is True
    assert {"name": READER, "cardPresent": True} in status["readers"]

    card.remove()
    assert host.event("cardRemoved")["data"] == {"reader": READER, "atr": ATR}
    assert _status(host)["cardPresent"] is False


def test_without_pcscd_the_host_says_why_and_keeps_serving(pcscd, host):
    pcscd.stop()
    status = _status(host)
    assert status["pcsc"].startswith("unavailable: pcscd is not running")
    assert status["readers"] == [] and status["cardPresent"] is False
    # and comes back by itself when pcscd does
    pcscd.start()
    deadline = time.monotonic() + 5
    while _status(host).get("pcsc", "ok") != "ok":
        assert time.monotonic() < deadline, "the host did not find pcscd again"
        time.sleep(0.05)
    assert len(_status(host)["readers"]) == 2
