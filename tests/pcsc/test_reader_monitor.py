"""The reader monitor against a real pcscd, vpcd readers and a virtual card."""

from __future__ import annotations

import subprocess
import sys
import queue
import textwrap
import threading

import pytest
from support.pcsc import DEFAULT_ATR, READER, SECOND_READER, Vicc, wait_until

from cisbridge.card.pcsc import ReaderMonitor, list_readers

ATR = DEFAULT_ATR.hex().upper()


def test_readers_are_listed_with_no_card(monitor):
    assert monitor.status() == "ok"
    assert monitor.readers() == [(READER, False), (SECOND_READER, False)]
    assert monitor.card_present() is False
    assert monitor.card_present(READER) is False


def test_readers_are_known_as_soon_as_start_returns(pcscd):
    monitor = ReaderMonitor()
    monitor.start()
    try:
        assert monitor.status() == "ok"
        assert monitor.readers() == [(READER, False), (SECOND_READER, False)]
    finally:
        assert monitor.stop()


def test_inserting_a_card_reports_the_reader_and_its_atr(monitor, events, card):
    card.insert()
    assert events.next() == ("cardInserted", READER, ATR)
    assert monitor.readers() == [(READER, True), (SECOND_READER, False)]
    assert monitor.card_present() is True
    assert monitor.card_present(READER) is True
    assert monitor.card_present(SECOND_READER) is False
    assert monitor.atr(READER) == ATR


def test_removing_the_card_reports_its_removal(monitor, events, card):
    card.insert()
    assert events.next() == ("cardInserted", READER, ATR)
    card.remove()
    assert events.next() == ("cardRemoved", READER, ATR)
    assert monitor.readers() == [(READER, False), (SECOND_READER, False)]
    assert monitor.card_present() is False
    assert monitor.atr(READER) is None


def test_each_slot_reports_its_own_card(monitor, events, card, second_card):
    second_card.insert()
    assert events.next() == ("cardInserted", SECOND_READER, second_card.atr.hex().upper())
    card.insert()
    assert events.next() == ("cardInserted", READER, ATR)
    assert monitor.readers() == [(READER, True), (SECOND_READER, True)]
    second_card.remove()
    assert events.next() == ("cardRemoved", SECOND_READER, second_card.atr.hex().upper())
    assert monitor.readers() == [(READER, True), (SECOND_READER, False)]


def test_a_card_already_in_the_reader_at_start_is_state_not_an_event(pcscd, events, card):
    card.insert()
    monitor = ReaderMonitor()
    # pcscd notices the card within its 400 ms polling; wait for it with a
    # second, plain look so the monitor starts after the card is known.
    wait_until(lambda: list_readers().readers[0].card_present)
    monitor.start(events)
    try:
        assert monitor.wait_ready(5)
        assert monitor.readers() == [(READER, True), (SECOND_READER, False)]
        card.remove()
        # the first event is the removal: nothing was announced at start
        assert events.next() == ("cardRemoved", READER, ATR)
    finally:
        monitor.stop()


def test_a_card_pulled_and_put_back_at_once_is_reported_as_both(monitor, events, card):
    card.insert()
    assert events.next() == ("cardInserted", READER, ATR)
    card.remove()
    card.insert()
    # however pcscd's polling splits the two, the listener sees the removal
    # before the card is present again, and ends with it present
    assert events.take(2) == [("cardRemoved", READER, ATR), ("cardInserted", READER, ATR)]
    assert monitor.card_present(READER) is True


def test_list_readers_gives_a_one_shot_snapshot(pcscd, card):
    card.insert()
    wait_until(lambda: list_readers().readers[0].card_present)
    snapshot = list_readers()
    assert snapshot.status == "ok"
    assert [(r.name, r.card_present, r.atr) for r in snapshot.readers] == [
        (READER, True, ATR),
        (SECOND_READER, False, None),
    ]


def test_stop_ends_the_thread_and_no_listener_is_called_after(pcscd, events, card):
    monitor = ReaderMonitor()
    monitor.start(events)
    assert monitor.wait_ready(5)
    assert monitor.stop() is True
    assert not monitor.running
    card.insert()
    wait_until(lambda: list_readers().readers[0].card_present)
    assert events.pending() == []
    assert monitor.stop() is True  # twice is harmless


def test_stop_right_after_start_does_not_hang(pcscd, events):
    for _ in range(20):  # races SCardCancel against entering the wait
        monitor = ReaderMonitor()
        monitor.start(events, wait=0)
        assert monitor.stop() is True


def test_a_listener_that_fails_does_not_stop_the_monitor_or_other_listeners(monitor, events, card, caplog):
    seen = []

    def flaky(kind, reader, atr):
        seen.append(kind)
        if kind == "cardInserted":
            raise RuntimeError("listener bug")

    unsubscribe = monitor.subscribe(flaky)
    later = []
    monitor.subscribe(lambda kind, reader, atr: later.append(kind))  # runs after flaky
    card.insert()
    assert events.next() == ("cardInserted", READER, ATR)
    card.remove()
    assert events.next() == ("cardRemoved", READER, ATR)
    wait_until(lambda: len(later) == 2)
    assert seen == later == ["cardInserted", "cardRemoved"]
    assert monitor.running
    assert "listener failed" in caplog.text

    unsubscribe()
    card.insert()
    assert events.next() == ("cardInserted", READER, ATR)
    assert seen == ["cardInserted", "cardRemoved"]


def test_without_pcscd_status_says_unavailable_and_nothing_raises(pcscd, events):
    pcscd.stop()
    snapshot = list_readers()
    assert snapshot.status.startswith("unavailable: pcscd is not running")
    assert "systemctl start pcscd" in snapshot.status
    assert snapshot.readers == []

    monitor = ReaderMonitor(retry_min=0.05, retry_max=0.2)
    monitor.start(events)
    try:
        assert monitor.wait_ready(5)
        assert monitor.status().startswith("unavailable: pcscd is not running")
        assert monitor.readers() == []
        assert monitor.card_present() is False
        # pcscd comes up later: the monitor finds it and its readers
        pcscd.start()
        assert sorted(events.take(2)) == [("readerAdded", READER, None), ("readerAdded", SECOND_READER, None)]
        assert monitor.status() == "ok"
        assert monitor.readers() == [(READER, False), (SECOND_READER, False)]
    finally:
        assert monitor.stop() is True


def test_pcscd_killed_while_watching_is_survived_and_reported(monitor, events, pcscd, card):
    card.insert()
    assert events.next() == ("cardInserted", READER, ATR)

    pcscd.kill()
    card.remove(timeout=0)  # nobody polls it now
    # a card the host can no longer see counts as gone, then its reader
    gone = events.take(3)
    assert gone[0] == ("cardRemoved", READER, ATR)
    assert sorted(gone[1:]) == [("readerRemoved", READER, None), ("readerRemoved", SECOND_READER, None)]
    # "pcscd stopped", then "pcscd is not running" once reconnecting fails
    assert monitor.status().startswith("unavailable: pcscd ")
    assert monitor.readers() == []
    assert monitor.running

    pcscd.start()
    assert sorted(events.take(2)) == [("readerAdded", READER, None), ("readerAdded", SECOND_READER, None)]
    assert monitor.status() == "ok"
    card.insert()
    assert events.next() == ("cardInserted", READER, ATR)


def test_a_reader_configured_while_pcscd_was_down_is_reported_added(monitor, events, pcscd):
    pcscd.stop()
    events.take(2)  # both readers removed
    pcscd.add_vpcd("Other PCD")
    try:
        pcscd.start()
        added = sorted(events.take(4))
        assert [e[0] for e in added] == ["readerAdded"] * 4
        assert {e[1] for e in added} >= {READER, SECOND_READER}
        others = sorted(e[1] for e in added if e[1] not in (READER, SECOND_READER))
        assert len(others) == 2 and all(name.startswith("Other PCD") for name in others)
    finally:
        pcscd.stop()
        pcscd.remove_vpcd("Other PCD")
        pcscd.start()


def test_pcscd_with_no_reader_is_ok_with_an_empty_list(monitor, events, pcscd):
    pcscd.stop()
    events.take(2)  # both readers removed
    conf = pcscd.confdir / "Virtual_PCD"
    saved = conf.read_text()
    conf.unlink()
    try:
        pcscd.start()
        wait_until(lambda: monitor.status() == "ok")
        assert monitor.readers() == []
        assert list_readers() == ("ok", [])
        # the monitor now waits on the PnP pseudo-reader alone; it still
        # stops at once and still notices pcscd going away
        pcscd.stop()
        wait_until(lambda: monitor.status().startswith("unavailable: "))
    finally:
        conf.write_text(saved)
        pcscd.start()
    assert sorted(events.take(2)) == [("readerAdded", READER, None), ("readerAdded", SECOND_READER, None)]


SUBPROCESS_MONITOR = textwrap.dedent(
    """
    import sys
    from cisbridge.card.pcsc import ReaderMonitor

    def show(kind, reader, atr):
        print(kind, reader, atr, flush=True)

    m = ReaderMonitor(retry_min=0.05, retry_max=0.2)
    m.start(show)
    m.wait_ready(5)
    print("ready", m.status(), flush=True)
    for line in sys.stdin:  # the test says when to stop, or closes stdin
        if line.strip() == "status":
            print("status", m.status(), flush=True)
        if line.strip() == "stop":
            ok = m.stop()
            print("stopped", ok, flush=True)
            break
    """
)


def test_a_monitor_in_another_process_sees_the_card_and_stops_without_a_trace(pcscd, card):
    proc = subprocess.Popen(
        [sys.executable, "-c", SUBPROCESS_MONITOR],
        env=pcscd.env(), stdin=subprocess.PIPE, stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True,
    )
    lines = _Lines(proc.stdout)
    try:
        assert lines.next() == "ready ok"
        card.insert()
        assert lines.next() == f"cardInserted {READER} {ATR}"
        pcscd.kill()  # pcscd vanishes under the monitor
        assert lines.take(3) == [
            f"cardRemoved {READER} {ATR}",
            f"readerRemoved {READER} None",
            f"readerRemoved {SECOND_READER} None",
        ]
        proc.stdin.write("status\n")
        proc.stdin.flush()
        assert lines.next().startswith("status unavailable: pcscd ")
        proc.stdin.write("stop\n")
        proc.stdin.flush()
        assert lines.next() == "stopped True"
        proc.stdin.close()
        proc.wait(10)
        err = proc.stderr.read()
    finally:
        if proc.poll() is None:
            proc.kill()
            proc.wait()
    assert proc.returncode == 0
    assert err == ""  # no traceback, no warning


class _Lines:
    """The lines a subprocess prints, to wait on with a timeout."""

    def __init__(self, stream):
        self._queue: queue.Queue = queue.Queue()
        threading.Thread(target=self._pump, args=(stream,), daemon=True).start()

    def _pump(self, stream):
        for line in stream:
            self._queue.put(line.strip())

    def next(self, timeout: float = 5.0) -> str:
        try:
            return self._queue.get(timeout=timeout)
        except queue.Empty:
            raise AssertionError(f"the subprocess printed nothing within {timeout} s") from None

    def take(self, n: int) -> list[str]:
        return [self.next() for _ in range(n)]


def test_vsmartcards_own_virtual_card_is_seen_too(monitor, events, pcscd):
    """The same through Debian's vicc, the reference implementation of the
    card side of vpcd's protocol (what tests/support's VirtualCard mimics)."""
    if Vicc.missing():
        pytest.skip(Vicc.missing())
    vicc = Vicc(pcscd.vpcd["Virtual PCD"].port)
    vicc.insert()
    try:
        assert events.next(10) == ("cardInserted", READER, "3B951381018073FF01000B")
    finally:
        err = vicc.remove()
    assert events.next() == ("cardRemoved", READER, "3B951381018073FF01000B"), err


def test_without_pyscard_status_says_so_and_nothing_raises():
    script = textwrap.dedent(
        """
        import sys
        sys.modules["smartcard"] = None  # as if pyscard were not installed
        from cisbridge.card.pcsc import ReaderMonitor, list_readers
        print(list_readers().status)
        m = ReaderMonitor()
        m.start(print)
        m.wait_ready(5)
        print(m.status(), m.readers(), m.card_present())
        print(m.stop())
        """
    )
    out = subprocess.run([sys.executable, "-c", script], capture_output=True, text=True, timeout=30)
    assert out.returncode == 0, out.stderr
    lines = out.stdout.splitlines()
    assert lines[0].startswith("unavailable: pyscard is not installed")
    assert lines[1].startswith("unavailable: pyscard is not installed") and lines[1].endswith(" [] False")
    assert lines[2] == "True"
    assert out.stderr == ""


def test_card_events_reach_the_event_loop_as_wire_data(pcscd, card):
    import asyncio

    from cisbridge.card.pcsc import card_events_to
    from cisbridge.protocol import CardEventData

    async def scenario():
        loop = asyncio.get_running_loop()
        emitted: asyncio.Queue = asyncio.Queue()

        def emit(event, data):  # runs on the loop, like Service.emit
            assert asyncio.get_running_loop() is loop
            emitted.put_nowait((event, data))

        monitor = ReaderMonitor()
        monitor.start(card_events_to(loop, emit))
        try:
            await loop.run_in_executor(None, monitor.wait_ready, 5)
            await loop.run_in_executor(None, card.insert)
            first = await asyncio.wait_for(emitted.get(), 5)
            await loop.run_in_executor(None, card.remove)
            second = await asyncio.wait_for(emitted.get(), 5)
        finally:
            assert monitor.stop()
        return first, second

    first, second = asyncio.run(scenario())
    assert first == ("cardInserted", CardEventData(reader=READER, atr=ATR))
    assert second == ("cardRemoved", CardEventData(reader=READER, atr=ATR))
