"""Pulling the card, end to end: the real host's reader monitor (private pcscd +
vpcd virtual card) ends the GAS session and any signing in progress."""

from __future__ import annotations

import base64
import sys
import time
from pathlib import Path

import pytest
from gas_support import ONE_ROLE, PIN, gas_config, login
from hostclient import ORIGIN

sys.path.insert(0, str(Path(__file__).parent.parent))
from support.pcsc import READER, VirtualCard, available, process_pcscd, wait_until  # noqa: E402

pytestmark = [pytest.mark.softhsm, pytest.mark.pcsc]

_MISSING = available()


@pytest.fixture
def reader():
    if _MISSING:
        pytest.skip(_MISSING)
    daemon = process_pcscd()
    daemon.start()
    card = VirtualCard(daemon.vpcd["Virtual PCD"].port)
    card.insert()
    yield daemon, card
    card.remove()


@pytest.fixture
def removal_host(start_host, gas_cards, reader):
    daemon, _ = reader

    def start(sim, label: str = "one"):
        env = {"SOFTHSM2_CONF": gas_cards.conf, "PCSCLITE_CSOCK_NAME": daemon.socket_path}
        host = start_host(gas_config(sim, label), env=env)
        assert host.call("getStatus")["result"]["pcsc"] == "ok"  # the reader monitor runs
        # pcscd polls vpcd every 400 ms: wait until it has seen the card
        wait_until(lambda: {"name": READER, "cardPresent": True} in host.call("getStatus")["result"]["readers"])
        host.events.clear()  # an insert seen after the monitor started is announced; start clean
        return host

    return start


def test_card_removal_ends_the_gas_session_and_logs_out(removal_host, reader, sim):
    _, card = reader
    host = removal_host(sim)
    ticket = login(host)["result"]["ticket"]
    assert host.call("getTicketNoAuth")["result"] == {"ticket": ticket}
    card.remove()
    removed = host.event("cardRemoved", timeout=5)
    assert removed["data"]["reader"] == READER
    ended = host.event("sessionEnded", timeout=5)
    assert ended["data"] == {"reason": "cardRemoved", "uid": ONE_ROLE}
    assert host.call("getTicketNoAuth")["result"] == {"ticket": None}
    wait_until(lambda: sim.events("logout"), timeout=5)
    card.insert()
    inserted = host.event("cardInserted", timeout=5)
    assert inserted["data"]["reader"] == READER and inserted["data"]["atr"]


def test_card_removed_while_signing_ends_the_request_with_card_removed(removal_host, reader, sim):
    _, card = reader
    host = removal_host(sim)
    payload = base64.b64encode(b"<SignedInfo>rx</SignedInfo>").decode()
    rid = host.send("sign", {"algorithm": "RS256", "payloads": [{"id": "rx-1", "payload": payload}]})
    host.prompt("consent", timeout=10)
    card.remove()
    error = host.response(rid, timeout=5)["error"]
    assert error["code"] == "CARD_REMOVED"
    assert error["detail"]["reader"] == READER
    # the card comes back and signing works again, with a fresh login
    card.insert()
    host.event("cardInserted", timeout=5)
    time.sleep(0.1)
    rid = host.send("sign", {"algorithm": "RS256", "payloads": [{"id": "rx-2", "payload": payload}]})
    host.reply(host.prompt("consent", timeout=10), True)
    host.reply(host.prompt("pin", timeout=10), PIN)
    assert [s["id"] for s in host.response(rid, timeout=10)["result"]["signatures"]] == ["rx-2"]


def test_no_ticket_is_answered_after_sessionended_while_pages_keep_asking(removal_host, reader, sim):
    """getTicketNoAuth is answered on the host's reader thread while the event
    loop ends the session: in the frame stream, no answer after sessionEnded
    may carry the ticket, and every request is answered exactly once."""
    import json
    import threading

    _, card = reader
    host = removal_host(sim)
    ticket = login(host)["result"]["ticket"]
    host.events.clear()
    stop = threading.Event()
    sent = []

    def ask() -> None:  # before, during and after the removal, until told to stop
        while not stop.is_set():
            request_id = f"q{len(sent)}"
            host.send_frame(json.dumps({"id": request_id, "method": "getTicketNoAuth", "origin": ORIGIN}).encode())
            sent.append(request_id)
            if len(sent) % 20 == 0:
                time.sleep(0.001)

    sender = threading.Thread(target=ask)
    sender.start()
    try:
        time.sleep(0.1)
        card.remove()  # pcscd sees it within ~0.4 s (it polls vpcd)
        stream: list[dict] = []
        answered: set[str] = set()
        ended_at = None
        while ended_at is None or len(stream) - ended_at < 300:
            item = host.next_frame(timeout=10)
            stream.append(item)
            if item.get("event") == "sessionEnded":
                ended_at = len(stream) - 1
            elif "id" in item:
                assert item["id"] not in answered
                answered.add(item["id"])
    finally:
        stop.set()
        sender.join()
    while len(answered) < len(sent):
        item = host.next_frame(timeout=10)
        stream.append(item)
        if "id" in item:
            assert item["id"] not in answered
            answered.add(item["id"])
    assert answered == set(sent)
    before = [f["result"]["ticket"] for f in stream[:ended_at] if "result" in f]
    after = [f["result"]["ticket"] for f in stream[ended_at:] if "result" in f]
    assert before and all(t == ticket for t in before)  # live while the card was in
    assert after and all(t is None for t in after), "a ticket was answered after sessionEnded"
