#!/usr/bin/env python3
"""Benchmark: card removal -> ReaderMonitor callback, against a bare
SCardGetStatusChange waiter in the same run (what pcscd itself can tell a
client), median of N removals; plus how long ReaderMonitor.stop() takes.
Then card removal -> the cardRemoved frame on the real host's stdout, again
against the bare waiter (issue #3's goal: at most the bare waiter + 50 ms).

Runs a private pcscd with the vpcd reader and a virtual card (tests/support/
pcsc.py), so it needs pcscd and vsmartcard-vpcd installed, nothing running.
The removal instant is when the virtual card hangs up in answer to vpcd's
presence poll, i.e. the moment pcscd can first know; both waiters are timed
from it.

    .venv/bin/python scripts/bench_pcsc.py [-n 10] [--only monitor|host]
"""

from __future__ import annotations

import argparse
import shutil
import statistics
import sys
import threading
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT / "tests"))
sys.path.insert(0, str(ROOT / "host"))

from support.pcsc import READER, VirtualCard, available, process_pcscd  # noqa: E402


class BareWaiter:
    """The least a client can do: one thread blocked in SCardGetStatusChange."""

    def __init__(self, reader: str):
        from smartcard import scard

        self.scard = scard
        self.reader = reader
        self.removed: list[float] = []
        self.inserted: list[float] = []
        self._stop = False
        hr, self.context = scard.SCardEstablishContext(scard.SCARD_SCOPE_USER)
        assert hr == 0, scard.SCardGetErrorMessage(hr)
        self.thread = threading.Thread(target=self._run, daemon=True)
        self.thread.start()

    def _run(self):
        scard = self.scard
        hr, states = scard.SCardGetStatusChange(self.context, 0, [(self.reader, scard.SCARD_STATE_UNAWARE)])
        state = states[0][1]
        while not self._stop:
            hr, states = scard.SCardGetStatusChange(self.context, scard.INFINITE, [(self.reader, state)])
            now = time.monotonic()
            if hr != 0:
                continue
            new = states[0][1]
            was, present = bool(state & scard.SCARD_STATE_PRESENT), bool(new & scard.SCARD_STATE_PRESENT)
            if was and not present:
                self.removed.append(now)
            elif present and not was:
                self.inserted.append(now)
            state = new & ~scard.SCARD_STATE_CHANGED

    def close(self):
        self._stop = True
        while self.thread.is_alive():
            self.scard.SCardCancel(self.context)
            self.thread.join(0.01)
        self.scard.SCardReleaseContext(self.context)


def wait_for(predicate, timeout=5.0):
    deadline = time.monotonic() + timeout
    while not predicate():
        if time.monotonic() > deadline:
            raise SystemExit("bench_pcsc: an expected card event did not come within 5 s")
        time.sleep(0.002)


def bench_host(daemon, n: int) -> int:
    """Removal -> cardRemoved frame read from the host's stdout."""
    import tempfile

    from hostclient import Host

    class TimedHost(Host):
        def _pump(self):  # the frame reader, stamping when each frame arrived
            import json

            out = self.proc.stdout
            while True:
                head = out.read(4)
                if len(head) < 4:
                    from hostclient import HostClosed

                    self._frames.put(HostClosed(head))
                    return
                body = out.read(int.from_bytes(head, sys.byteorder))
                now = time.monotonic()
                frame = json.loads(body)
                frame["_t"] = now
                self._frames.put(frame)

    workdir = Path(tempfile.mkdtemp(prefix="cisbridge-bench-host-"))
    host = TimedHost(workdir, env={"PCSCLITE_CSOCK_NAME": daemon.socket_path})
    bare = BareWaiter(READER)
    card = VirtualCard(daemon.vpcd["Virtual PCD"].port)
    host_ms, bare_ms = [], []
    try:
        # The host starts its reader monitor with the first allowed request.
        first = host.call("getStatus")
        print(f"first getStatus: readers={first['result']['readers']} pcsc={first['result'].get('pcsc', 'ok')!r}")
        deadline = time.monotonic() + 5
        while host.call("getStatus")["result"].get("pcsc", "ok") != "ok":
            if time.monotonic() > deadline:
                print("bench_pcsc: the host's getStatus never said pcsc ok", file=sys.stderr)
                return 1
            time.sleep(0.01)
        for i in range(n):
            card.insert()
            try:
                host.event("cardInserted", timeout=5)
            except TimeoutError:
                print("bench_pcsc: the host sent no cardInserted event: is the reader monitor wired in?",
                      file=sys.stderr)
                return 1
            wait_for(lambda: len(bare.inserted) > i)
            card.remove()
            frame = host.event("cardRemoved", timeout=5)
            wait_for(lambda: len(bare.removed) > i)
            host_ms.append((frame["_t"] - card.removed_at) * 1000)
            bare_ms.append((bare.removed[i] - card.removed_at) * 1000)
    finally:
        bare.close()
        host.stop()
        shutil.rmtree(workdir, ignore_errors=True)
    med_h, med_b = statistics.median(host_ms), statistics.median(bare_ms)
    print(f"card removal -> cardRemoved frame on the host's stdout, median of {n} (ms from the card leaving vpcd):")
    print(f"  bare SCardGetStatusChange waiter: {med_b:7.2f}   (min {min(bare_ms):.2f}, max {max(bare_ms):.2f})")
    print(f"  host frame:                       {med_h:7.2f}   (min {min(host_ms):.2f}, max {max(host_ms):.2f})")
    print(f"  host - bare:                      {med_h - med_b:+7.2f}   (goal: <= +50)")
    return 0


def bench_monitor(daemon, n: int) -> None:
    """Removal -> ReaderMonitor callback, and stop() time."""
    from cisbridge.card.pcsc import ReaderMonitor

    monitor_removed: list[float] = []
    monitor_inserted: list[float] = []

    def on_event(kind, reader, atr):
        now = time.monotonic()
        if reader == READER:
            (monitor_removed if kind == "cardRemoved" else monitor_inserted).append(now)

    monitor = ReaderMonitor()
    monitor.start(on_event)
    monitor.wait_ready(5)
    bare = BareWaiter(READER)
    card = VirtualCard(daemon.vpcd["Virtual PCD"].port)

    monitor_ms, bare_ms = [], []
    for i in range(n):
        card.insert()
        wait_for(lambda: len(monitor_inserted) > i and len(bare.inserted) > i)
        card.remove()
        wait_for(lambda: len(monitor_removed) > i and len(bare.removed) > i)
        monitor_ms.append((monitor_removed[i] - card.removed_at) * 1000)
        bare_ms.append((bare.removed[i] - card.removed_at) * 1000)
    bare.close()
    monitor.stop()

    stop_ms = []
    for _ in range(n):
        m = ReaderMonitor()
        m.start()
        m.wait_ready(5)
        time.sleep(0.05)  # let it settle into SCardGetStatusChange
        t = time.monotonic()
        assert m.stop()
        stop_ms.append((time.monotonic() - t) * 1000)

    med_m, med_b = statistics.median(monitor_ms), statistics.median(bare_ms)
    print(f"card removal -> callback, median of {n} (ms from the card leaving vpcd):")
    print(f"  bare SCardGetStatusChange waiter: {med_b:7.2f}   (min {min(bare_ms):.2f}, max {max(bare_ms):.2f})")
    print(f"  ReaderMonitor callback:           {med_m:7.2f}   (min {min(monitor_ms):.2f}, max {max(monitor_ms):.2f})")
    print(f"  monitor - bare:                   {med_m - med_b:+7.2f}")
    print(f"ReaderMonitor.stop(), median of {n}: {statistics.median(stop_ms):.2f} ms (max {max(stop_ms):.2f})")


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("-n", type=int, default=10, help="removals to time (default 10)")
    parser.add_argument("--only", choices=("monitor", "host"), help="run one of the two benchmarks")
    args = parser.parse_args()
    missing = available()
    if missing:
        print(f"bench_pcsc: {missing}", file=sys.stderr)
        return 2

    daemon = process_pcscd()  # stopped at exit
    daemon.start()
    if args.only != "host":
        bench_monitor(daemon, args.n)
    if args.only != "monitor":
        if args.only is None:
            print()
        return bench_host(daemon, args.n)
    return 0


if __name__ == "__main__":
    sys.exit(main())
