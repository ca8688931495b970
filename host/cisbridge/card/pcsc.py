"""PC/SC readers and card events: which readers there are, which hold a card,
and a callback the moment a card or a reader comes or goes.

:class:`ReaderMonitor` runs one thread of its own that waits in
``SCardGetStatusChange`` on every reader plus the ``\\\\?PnP?\\Notification``
pseudo-reader (so plugged and unplugged readers wake it too).  It keeps the
current state in memory, so :meth:`~ReaderMonitor.readers`,
:meth:`~ReaderMonitor.card_present` and :meth:`~ReaderMonitor.status` answer
at once without touching PC/SC.  :meth:`~ReaderMonitor.stop` wakes the wait
with ``SCardCancel``, so it returns in milliseconds; pyscard's own
``CardMonitor`` cannot be stopped like that (its thread outlives its
observers and prints tracebacks when pcscd goes away).

When the PC/SC service is missing or goes away the monitor says so in
:meth:`~ReaderMonitor.status`, forgets its readers (reporting their cards as
removed: a card we cannot see must not keep a session alive) and quietly
tries again with a growing delay; when the service is back, readers and
cards are reported as added and inserted.  Nothing here raises because PC/SC
is unavailable.

pyscard is imported on first use, inside the functions, so the host starts
fast and runs without it.
"""

from __future__ import annotations

import logging
import sys
import threading
import time
from typing import Callable, NamedTuple

log = logging.getLogger(__name__)

#: The pseudo-reader whose state changes when a reader is plugged or unplugged.
PNP_NOTIFICATION = "\\\\?PnP?\\Notification"

#: Event kinds passed to the ``on_event`` callback (the wire's event names).
CARD_INSERTED = "cardInserted"
CARD_REMOVED = "cardRemoved"
READER_ADDED = "readerAdded"
READER_REMOVED = "readerRemoved"

#: ``on_event(kind, reader, atr_hex)``; ``atr_hex`` is the card's ATR as
#: upper-case hex without spaces for card events (on removal: the ATR of the
#: card that left), ``None`` for reader events.
EventCallback = Callable[[str, str, "str | None"], None]

# How often an idle monitor re-lists readers anyway.  pcsc-lite counts readers
# for the PnP pseudo-reader afresh at the start of every SCardGetStatusChange,
# so a reader plugged in between our SCardListReaders and that call would go
# unnoticed until the next event; this bounds that.  Card events are never
# delayed by it: they end the wait at once.
_RESCAN_MS = 5000


def _service_hint() -> str:
    if sys.platform.startswith("linux"):
        return "pcscd is not running — start it with `sudo systemctl start pcscd.socket` (package pcscd)"
    if sys.platform == "win32":
        return "the Smart Card service is not running — plug in a reader or start the Smart Card service (SCardSvr)"
    if sys.platform == "darwin":
        return "the system's smart card service did not answer — plug in a reader, or restart the Mac"
    return "the PC/SC service (pcscd) is not running — start it"


def _lost_hint() -> str:
    if sys.platform.startswith("linux"):
        return "pcscd stopped; waiting for it to come back (`sudo systemctl start pcscd.socket`)"
    return "the smart card service stopped; waiting for it to come back"


def _scard():
    """pyscard's low-level module, or ImportError with a message for people."""
    try:
        from smartcard import scard
    except ImportError as e:  # pragma: no cover - depends on the install
        raise ImportError(
            "pyscard is not installed or cannot load the PC/SC library "
            f"({e}); reinstall cisbridge, or install pyscard and libpcsclite"
        ) from e
    return scard


def _code(hr: int) -> int:
    return hr & 0xFFFFFFFF


def _hex(atr) -> str | None:
    return bytes(atr).hex().upper() if atr else None


class _Service:
    """Which PC/SC return codes mean what, read from pyscard once."""

    def __init__(self, scard):
        self.ok = _code(scard.SCARD_S_SUCCESS)
        self.cancelled = _code(scard.SCARD_E_CANCELLED)
        self.timeout = _code(scard.SCARD_E_TIMEOUT)
        self.no_readers = _code(scard.SCARD_E_NO_READERS_AVAILABLE)
        self.unknown_reader = {_code(scard.SCARD_E_UNKNOWN_READER), _code(scard.SCARD_E_READER_UNAVAILABLE)}
        self.gone = {
            _code(scard.SCARD_E_NO_SERVICE),
            _code(scard.SCARD_E_SERVICE_STOPPED),
            _code(scard.SCARD_E_INVALID_HANDLE),
            _code(scard.SCARD_F_COMM_ERROR),
            # pcsc-lite's answer when pcscd's socket closes under a call
            _code(scard.SCARD_W_SECURITY_VIOLATION),
        }
        self.scard = scard

    def describe(self, hr: int) -> str:
        try:
            text = self.scard.SCardGetErrorMessage(hr)
        except Exception:  # noqa: BLE001 - only for a message
            text = "PC/SC error"
        return f"{text.rstrip('.')} (0x{_code(hr):08X})"


class ReaderInfo(NamedTuple):
    name: str
    card_present: bool
    #: the ATR of the card in the reader (upper-case hex), None when empty
    atr: str | None


class Snapshot(NamedTuple):
    #: "ok", or "unavailable: <why, and what to do>"
    status: str
    readers: list[ReaderInfo]


class ReaderMonitor:
    """Watches PC/SC readers from its own thread; see the module docstring.

    ``retry_min``/``retry_max`` bound the delay (seconds, doubling) between
    attempts to reach a missing PC/SC service.
    """

    def __init__(self, *, retry_min: float = 0.25, retry_max: float = 5.0):
        self.retry_min = retry_min
        self.retry_max = retry_max
        self._lock = threading.Lock()
        self._readers: dict[str, ReaderInfo] = {}
        self._counters: dict[str, int] = {}
        self._status = "unavailable: the reader monitor has not started"
        self._context = None  # the PC/SC context the thread is using, for SCardCancel
        self._stopping = threading.Event()
        self._ready = threading.Event()
        self._thread: threading.Thread | None = None
        self._listeners: list[EventCallback] = []

    # -- what callers ask -----------------------------------------------------

    def status(self) -> str:
        """"ok", or "unavailable: <why and what to do>"."""
        with self._lock:
            return self._status

    def readers(self) -> list[tuple[str, bool]]:
        """(reader name, card present) for every reader, as last seen."""
        with self._lock:
            return [(r.name, r.card_present) for r in self._readers.values()]

    def view(self) -> tuple[list[tuple[str, bool]], str]:
        """readers() and status(), read together."""
        with self._lock:
            return [(r.name, r.card_present) for r in self._readers.values()], self._status

    def reader_info(self) -> list[ReaderInfo]:
        """Like :meth:`readers`, with each card's ATR."""
        with self._lock:
            return list(self._readers.values())

    def card_present(self, reader: str | None = None) -> bool:
        """Whether ``reader`` (default: any reader) holds a card, as last seen."""
        with self._lock:
            if reader is None:
                return any(r.card_present for r in self._readers.values())
            info = self._readers.get(reader)
            return bool(info and info.card_present)

    def atr(self, reader: str) -> str | None:
        with self._lock:
            info = self._readers.get(reader)
            return info.atr if info else None

    @property
    def running(self) -> bool:
        return self._thread is not None and self._thread.is_alive()

    # -- life cycle -----------------------------------------------------------

    def start(self, on_event: EventCallback | None = None, *, wait: float = 0.5) -> None:
        """Start watching; ``on_event(kind, reader, atr_hex)`` is then called
        from the monitor's thread for every change (never for the state found
        at start: that is what :meth:`readers` says).

        Waits up to ``wait`` seconds for that first look (readers listed, or
        PC/SC found missing) so that a getStatus right after start is already
        true; it takes a few milliseconds (≈6 ms with pyscard's import, 0.5 ms
        after).  ``wait=0`` returns at once; :meth:`wait_ready` waits later.
        """
        if self._thread is not None:
            raise RuntimeError("this ReaderMonitor has already been started")
        if on_event is not None:
            self.subscribe(on_event)
        self._thread = threading.Thread(target=self._run, name="cisbridge-pcsc-monitor", daemon=True)
        self._thread.start()
        if wait > 0:
            self._ready.wait(wait)

    def subscribe(self, listener: EventCallback) -> Callable[[], None]:
        """Also call ``listener(kind, reader, atr_hex)`` on every change (from
        the monitor's thread; keep it quick and thread-safe).  Returns a
        function that unsubscribes it.  Lets the service, the identity agent
        (session ends when the card leaves) and a running sign (CARD_REMOVED)
        each listen."""
        with self._lock:
            self._listeners.append(listener)

        def unsubscribe() -> None:
            with self._lock:
                if listener in self._listeners:
                    self._listeners.remove(listener)

        return unsubscribe

    def wait_ready(self, timeout: float | None = None) -> bool:
        """Block until the first look at PC/SC is done (readers listed, or the
        service found missing); True if it was done within ``timeout``."""
        return self._ready.wait(timeout)

    def ready_now(self) -> bool:
        """Whether the first look is done (no wait)."""
        return self._ready.is_set()

    def stop(self, timeout: float = 1.0) -> bool:
        """Stop the thread; True if it ended within ``timeout`` seconds.

        No callback runs once this returns.  Normally it takes a few
        milliseconds: the wait is cancelled with SCardCancel.  (pcsc-lite
        cannot cancel SCardEstablishContext, which hangs while something holds
        pcscd's socket without answering; the thread is a daemon then and
        is left behind.)
        """
        self._stopping.set()
        thread = self._thread
        if thread is None:
            return True
        deadline = time.monotonic() + timeout
        # Cancel repeatedly: a single SCardCancel can land just before the
        # thread enters SCardGetStatusChange and be lost.
        while thread.is_alive():
            self._cancel()
            thread.join(0.005)
            if time.monotonic() >= deadline:
                break
        alive = thread.is_alive()
        if alive:
            log.warning("PC/SC monitor: the thread did not stop within %.1f s; leaving it behind", timeout)
        return not alive

    def _cancel(self) -> None:
        with self._lock:
            context = self._context
            if context is None:
                return
            try:
                _scard().SCardCancel(context)
            except Exception:  # noqa: BLE001 - a context released meanwhile is fine
                pass

    # -- the thread -----------------------------------------------------------

    def _run(self) -> None:
        try:
            scard = _scard()
        except ImportError as e:
            self._set_unavailable(str(e))
            self._ready.set()
            return
        service = _Service(scard)
        delay = self.retry_min
        while not self._stopping.is_set():
            hr, context = scard.SCardEstablishContext(scard.SCARD_SCOPE_USER)
            if _code(hr) != service.ok:
                if _code(hr) in service.gone:
                    reason = _service_hint()
                else:
                    reason = f"cannot connect to the PC/SC service: {service.describe(hr)}"
                self._set_unavailable(reason)
                self._ready.set()
                self._stopping.wait(delay)
                delay = min(delay * 2, self.retry_max)
                continue
            with self._lock:
                self._context = context
            try:
                reason = self._watch(service, context)
            except Exception as e:  # noqa: BLE001 - a monitor must outlive surprises
                log.exception("PC/SC monitor: unexpected failure; starting again")
                reason = f"the reader monitor failed ({type(e).__name__}); retrying"
            finally:
                with self._lock:
                    self._context = None
                try:
                    scard.SCardReleaseContext(context)
                except Exception:  # noqa: BLE001
                    pass
            if reason is None:  # stopping
                break
            self._set_unavailable(reason)
            self._ready.set()
            delay = self.retry_min
            self._stopping.wait(delay)
        self._ready.set()

    def _watch(self, service: _Service, context) -> str | None:
        """Wait for changes until stopped (None) or the service is lost (why)."""
        scard = service.scard
        # reader name -> the state PC/SC last reported (fed back as the
        # "current state", so the next call returns when anything differs)
        known: dict[str, int] = {}
        first = True
        while not self._stopping.is_set():
            hr, names = scard.SCardListReaders(context, [])
            if _code(hr) == service.no_readers:
                names = []
            elif _code(hr) in service.gone:
                return _lost_hint()
            elif _code(hr) != service.ok:
                return f"cannot list readers: {service.describe(hr)}"
            names = [n for n in names if n != PNP_NOTIFICATION]

            for name in [n for n in known if n not in names]:
                del known[name]
                self._reader_gone(name)
            new = [n for n in names if n not in known]
            if new:
                hr, states = scard.SCardGetStatusChange(context, 0, [(n, scard.SCARD_STATE_UNAWARE) for n in new])
                if _code(hr) in service.unknown_reader or _code(hr) == service.timeout:
                    continue  # a reader left while we looked: list again
                if _code(hr) in service.gone:
                    return _lost_hint()
                if _code(hr) != service.ok:
                    return f"cannot read reader states: {service.describe(hr)}"
                # The state found at start is state, not news; readers found
                # later (plugged in, or pcscd back) are announced.
                announce = self._ready.is_set()
                for name, state, atr in states:
                    known[name] = state & ~scard.SCARD_STATE_CHANGED
                    self._reader_seen(scard, name, state, atr, announce=announce)
            if first:
                self._set_ok()
                first = False
            self._ready.set()

            # On Windows the PnP pseudo-reader compares the reader count kept
            # in the high word; pcsc-lite ignores it.
            watch = [(n, s) for n, s in known.items()] + [(PNP_NOTIFICATION, len(known) << 16)]
            hr, states = scard.SCardGetStatusChange(context, _RESCAN_MS, watch)
            code = _code(hr)
            if code in (service.cancelled, service.timeout) or code in service.unknown_reader:
                continue
            if code in service.gone:
                return None if self._stopping.is_set() else _lost_hint()
            if code != service.ok:
                return f"cannot wait for card events: {service.describe(hr)}"
            for name, state, atr in states:
                if name == PNP_NOTIFICATION or name not in known:
                    continue
                if state & (scard.SCARD_STATE_UNKNOWN | scard.SCARD_STATE_IGNORE):
                    continue  # the reader left: the next listing reports it
                known[name] = state & ~scard.SCARD_STATE_CHANGED
                self._reader_seen(scard, name, state, atr, announce=True)
        return None

    # -- state bookkeeping (monitor thread only writes) -------------------------

    def _reader_seen(self, scard, name: str, state: int, atr, *, announce: bool) -> None:
        present = bool(state & scard.SCARD_STATE_PRESENT)
        counter = (state >> 16) & 0xFFFF
        atr_hex = _hex(atr) if present else None
        events: list[tuple[str, str, str | None]] = []
        with self._lock:
            old = self._readers.get(name)
            old_counter = self._counters.get(name)
            self._readers[name] = ReaderInfo(name, present, atr_hex)
            self._counters[name] = counter
        if old is None:
            events.append((READER_ADDED, name, None))
            if present:
                events.append((CARD_INSERTED, name, atr_hex))
        elif old.card_present and not present:
            events.append((CARD_REMOVED, name, old.atr))
        elif present and not old.card_present:
            events.append((CARD_INSERTED, name, atr_hex))
        elif present and counter != old_counter:
            # pcscd counts insertions and removals: a card was swapped (or
            # pulled and put back) between two looks.
            events.append((CARD_REMOVED, name, old.atr))
            events.append((CARD_INSERTED, name, atr_hex))
        if announce:
            self._emit(events)

    def _reader_gone(self, name: str) -> None:
        with self._lock:
            old = self._readers.pop(name, None)
            self._counters.pop(name, None)
        if old is not None:
            self._emit(_departures(old))

    def _set_ok(self) -> None:
        with self._lock:
            was = self._status
            self._status = "ok"
        if was != "ok" and not was.endswith("has not started"):
            log.info("PC/SC available again")

    def _set_unavailable(self, reason: str) -> None:
        status = f"unavailable: {reason}"
        with self._lock:
            was = self._status
            self._status = status
            gone = list(self._readers.values())
            self._readers.clear()
            self._counters.clear()
        if was != status:
            log.info("PC/SC %s", status)
        for info in gone:
            self._emit(_departures(info))

    def _emit(self, events) -> None:
        for kind, reader, atr in events:
            with self._lock:
                listeners = list(self._listeners)
            for listener in listeners:
                if self._stopping.is_set():
                    return
                try:
                    listener(kind, reader, atr)
                except Exception:  # noqa: BLE001 - a listener's bug must not stop the monitor
                    log.exception("PC/SC monitor: a %s listener failed", kind)


def _departures(info: ReaderInfo) -> list[tuple[str, str, str | None]]:
    events = []
    if info.card_present:
        events.append((CARD_REMOVED, info.name, info.atr))
    events.append((READER_REMOVED, info.name, None))
    return events


def card_events_to(loop, emit) -> EventCallback:
    """A listener that passes card events to ``emit(event_name, CardEventData)``
    on the asyncio ``loop`` (the service's ``emit`` writes frames, so it must
    run there, not on the monitor's thread).  Reader events are not wire
    events and are left out.

    Wiring, in the host::

        monitor = ReaderMonitor()
        monitor.start(card_events_to(asyncio.get_running_loop(), service.emit))
        service.monitor = monitor          # getStatus reads readers()/status()
        ...
        monitor.stop()                     # before the loop closes
    """
    from cisbridge.protocol import CardEventData

    def listener(kind: str, reader: str, atr: str | None) -> None:
        if kind not in (CARD_INSERTED, CARD_REMOVED):
            return
        try:
            loop.call_soon_threadsafe(emit, kind, CardEventData(reader=reader, atr=atr))
        except RuntimeError:
            pass  # the loop is closed: the host is shutting down

    return listener


def list_readers() -> Snapshot:
    """One look at PC/SC, for ``cisbridge doctor``: never raises for a missing
    service or library, the reason is in ``status``."""
    try:
        scard = _scard()
    except ImportError as e:
        return Snapshot(f"unavailable: {e}", [])
    service = _Service(scard)
    hr, context = scard.SCardEstablishContext(scard.SCARD_SCOPE_USER)
    if _code(hr) != service.ok:
        why = _service_hint() if _code(hr) in service.gone else service.describe(hr)
        return Snapshot(f"unavailable: {why}", [])
    try:
        hr, names = scard.SCardListReaders(context, [])
        if _code(hr) == service.no_readers:
            return Snapshot("ok", [])
        if _code(hr) != service.ok:
            return Snapshot(f"unavailable: cannot list readers: {service.describe(hr)}", [])
        names = [n for n in names if n != PNP_NOTIFICATION]
        if not names:
            return Snapshot("ok", [])
        hr, states = scard.SCardGetStatusChange(context, 0, [(n, scard.SCARD_STATE_UNAWARE) for n in names])
        if _code(hr) != service.ok:
            # a reader may have left meanwhile: report names without presence
            return Snapshot("ok", [ReaderInfo(n, False, None) for n in names])
        readers = []
        for name, state, atr in states:
            present = bool(state & scard.SCARD_STATE_PRESENT)
            readers.append(ReaderInfo(name, present, _hex(atr) if present else None))
        return Snapshot("ok", readers)
    finally:
        scard.SCardReleaseContext(context)
