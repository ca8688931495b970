"""A private pcscd with vpcd virtual readers, and a virtual card to put in them.

The real pcscd runs per test session on its own unix socket, handed over as
fd 3 the way systemd's socket activation does it (LISTEN_PID/LISTEN_FDS), so
nothing under /run is touched and several runs can share a machine.  Clients
find it through ``PCSCLITE_CSOCK_NAME``, which libpcsclite reads once per
process, before the first PC/SC call: set it before pyscard is first used, or
run the PC/SC client in a subprocess with :meth:`PrivatePcscd.env`.

vpcd (vsmartcard's PC/SC driver) listens on TCP port ``CHANNELID`` and the
next one, one reader slot each.  pcscd asks it about card presence every
400 ms; vpcd then sends the card a "give me your ATR" frame.  The card side of
that protocol is tiny, so :class:`VirtualCard` plays it: connecting inserts
the card, closing the connection removes it.

Used by tests/pcsc and reusable by host and browser tests.
"""

from __future__ import annotations

import os
import queue
import random
import shutil
import socket
import struct
import subprocess
import threading
import time
from pathlib import Path

PCSCD = shutil.which("pcscd") or "/usr/sbin/pcscd"
VPCD_DRIVER = "/usr/lib/pcsc/drivers/serial/libifdvpcd.so"

#: the ATR of vsmartcard's iso7816 card (what ``vicc -t iso7816`` answers)
DEFAULT_ATR = bytes.fromhex("3B9513810180 73FF01000B".replace(" ", ""))

# vpcd -> card control frames (payload of length 1); anything longer is an APDU.
_CTRL_OFF, _CTRL_ON, _CTRL_RESET, _CTRL_ATR = 0x00, 0x01, 0x02, 0x04

#: the two reader slots of process_pcscd()'s vpcd config, as PC/SC names them
READER = "Virtual PCD 00 00"
SECOND_READER = "Virtual PCD 00 01"

_START_MARK = b"--- tests/support/pcsc.py: starting pcscd\n"


def available() -> str | None:
    """None when pcscd and the vpcd driver are installed, else what is missing."""
    if not os.path.exists(PCSCD):
        return "pcscd is not installed (apt-get install pcscd)"
    if not os.path.exists(VPCD_DRIVER):
        return "the vpcd driver is not installed (apt-get install vsmartcard-vpcd)"
    return None


def free_port_pair() -> int:
    """A TCP port p such that p and p+1 are both free on localhost."""
    for _ in range(200):
        port = random.randrange(20000, 60000)
        socks = []
        try:
            for p in (port, port + 1):
                s = socket.socket()
                socks.append(s)
                s.bind(("0.0.0.0", p))
            return port
        except OSError:
            continue
        finally:
            for s in socks:
                s.close()
    raise RuntimeError("no two consecutive free TCP ports found")


class VpcdReader:
    """One vpcd reader config: two reader slots, on TCP ``port`` and ``port + 1``."""

    def __init__(self, friendly_name: str, port: int):
        self.friendly_name = friendly_name
        self.port = port

    def config(self) -> str:
        return (
            f'FRIENDLYNAME "{self.friendly_name}"\n'
            f"DEVICENAME   /dev/null:0x{self.port:04X}\n"
            f"LIBPATH      {VPCD_DRIVER}\n"
            f"CHANNELID    0x{self.port:04X}\n"
        )


class PrivatePcscd:
    """pcscd on a private socket, reading reader configs from a private dir.

    ``start()``/``stop()``/``kill()`` can be called repeatedly; the socket path
    and the reader configs stay the same across restarts.
    """

    def __init__(self, workdir: Path, *, log_level: str = "--info"):
        self.workdir = Path(workdir)
        self.confdir = self.workdir / "reader.conf.d"
        self.confdir.mkdir(parents=True, exist_ok=True)
        self.socket_path = str(self.workdir / "pcscd.comm")
        self.log_path = self.workdir / "pcscd.log"
        self.proc: subprocess.Popen | None = None
        self._listener: socket.socket | None = None
        self.vpcd: dict[str, VpcdReader] = {}
        self.log_level = log_level  # pcscd option: --debug, --info, --error

    # -- readers ------------------------------------------------------------

    def add_vpcd(self, friendly_name: str = "Virtual PCD") -> VpcdReader:
        """Write a vpcd reader config; pcscd reads it when it (re)starts.

        Not at run time: Debian's pcscd is built with libudev, whose
        ``pcscd --hotplug`` (SIGUSR1) rescans USB only, never the serial
        reader configs, so a vpcd reader cannot be plugged into a running
        pcscd.
        """
        reader = VpcdReader(friendly_name, free_port_pair())
        (self.confdir / self._conf_name(friendly_name)).write_text(reader.config())
        self.vpcd[friendly_name] = reader
        return reader

    def remove_vpcd(self, friendly_name: str) -> None:
        (self.confdir / self._conf_name(friendly_name)).unlink()
        del self.vpcd[friendly_name]

    @staticmethod
    def _conf_name(friendly_name: str) -> str:
        return "".join(c if c.isalnum() else "_" for c in friendly_name)

    # -- the daemon ---------------------------------------------------------

    def env(self) -> dict[str, str]:
        """Environment for a PC/SC client process that should use this pcscd."""
        return {**os.environ, "PCSCLITE_CSOCK_NAME": self.socket_path}

    @property
    def running(self) -> bool:
        return self.proc is not None and self.proc.poll() is None

    def start(self, timeout: float = 5.0) -> None:
        if self.running:
            return
        if self._listener is None:
            if os.path.exists(self.socket_path):
                os.unlink(self.socket_path)  # left by a killed pcscd
            self._listener = socket.socket(socket.AF_UNIX, socket.SOCK_STREAM)
            self._listener.bind(self.socket_path)
            self._listener.listen(64)
        fd = self._listener.fileno()
        # sd_listen_fds() wants LISTEN_PID to be pcscd's own pid: the shell's
        # $$ is it, because the shell execs pcscd (with our socket as fd 3).
        moves = "" if fd == 3 else f" 3<&{fd} {fd}<&-"
        script = f'LISTEN_PID=$$ LISTEN_FDS=1 exec "$0" "$@"{moves}'
        env = {k: v for k, v in os.environ.items() if not k.startswith(("LISTEN_", "PCSCLITE_"))}
        log = open(self.log_path, "ab")
        log.write(_START_MARK)
        log.flush()
        try:
            self.proc = subprocess.Popen(
                ["/bin/bash", "-c", script, PCSCD, "--foreground", self.log_level, "--config", str(self.confdir)],
                pass_fds=(fd,), env=env, stdin=subprocess.DEVNULL, stdout=log, stderr=subprocess.STDOUT,
            )
        finally:
            log.close()
        self._wait_ready(timeout)

    def _wait_ready(self, timeout: float) -> None:
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            if not self.running:
                raise RuntimeError(f"pcscd exited at start; see {self.log_path}:\n{self.log_tail()}")
            lines = self._log_since_start()
            if any(b"daemon ready" in line for line in lines):
                if not any(b"Started by systemd" in line for line in lines):
                    self.stop()
                    raise RuntimeError("pcscd ignored the socket it was given (LISTEN_FDS)")
                return
            time.sleep(0.02)
        raise RuntimeError(f"pcscd did not become ready in {timeout} s; see {self.log_path}")

    def _log_since_start(self) -> list[bytes]:
        lines = self.log_path.read_bytes().splitlines()
        # only lines written by the current process: after the last start banner
        for i in range(len(lines) - 1, -1, -1):
            if lines[i] == _START_MARK.strip():
                return lines[i:]
        return []

    def log_tail(self, n: int = 30) -> str:
        try:
            return "\n".join(self.log_path.read_text(errors="replace").splitlines()[-n:])
        except OSError:
            return ""

    def stop(self) -> None:
        """Stop pcscd the polite way (SIGTERM) and take its socket away:
        clients now get "no service" at once."""
        if self.proc is not None:
            if self.proc.poll() is None:
                self.proc.terminate()
                try:
                    self.proc.wait(5)
                except subprocess.TimeoutExpired:
                    self.proc.kill()
                    self.proc.wait()
            self.proc = None
        self._close_listener(unlink=True)

    def kill(self) -> None:
        """pcscd dies without cleaning up (SIGKILL), as in a crash: the socket
        file stays behind with nobody listening."""
        if self.proc is not None:
            self.proc.kill()
            self.proc.wait()
            self.proc = None
        self._close_listener(unlink=False)

    def _close_listener(self, *, unlink: bool) -> None:
        # Keeping the listening socket open while pcscd is down would make
        # clients hang in SCardEstablishContext (pcsc-lite waits for an
        # answer forever), which is not what a stopped pcscd looks like.
        if self._listener is not None:
            self._listener.close()
            self._listener = None
        if unlink and os.path.exists(self.socket_path):
            os.unlink(self.socket_path)

    close = stop

    def __enter__(self) -> PrivatePcscd:
        self.start()
        return self

    def __exit__(self, *exc) -> None:
        self.close()


class VirtualCard:
    """A card in a vpcd reader slot: :meth:`insert` connects, :meth:`remove` hangs up.

    Answers vpcd's ATR requests with ``atr``, ignores power on/off/reset, and
    answers every APDU with ``apdu_reply`` (by default 6D00, "instruction not
    supported"), or with ``handler(apdu)`` when one is given.

    vpcd quirk: a new connection waiting when vpcd finds the old one gone
    (even one arriving during that very poll) silently takes its place, and
    pcscd never sees the card leave.  So :meth:`remove` hangs up in answer to
    vpcd's next presence poll (a lone ATR request), then lets that poll end;
    inserting again right after is then seen as a removal and an insertion,
    as with a real card.
    """

    def __init__(self, port: int, atr: bytes = DEFAULT_ATR, *, handler=None, apdu_reply: bytes = b"\x6d\x00"):
        self.port = port
        self.atr = atr
        self.handler = handler or (lambda apdu: apdu_reply)
        self._sock: socket.socket | None = None
        self._thread: threading.Thread | None = None
        self._pull = threading.Event()
        self._pulled = threading.Event()
        self.powered = False
        self.apdus: list[bytes] = []
        #: time.monotonic() when the card last left vpcd (the answer to its poll)
        self.removed_at: float | None = None

    @property
    def inserted(self) -> bool:
        return self._sock is not None

    def insert(self, timeout: float = 5.0) -> None:
        if self._sock is not None:
            return
        deadline = time.monotonic() + timeout
        while True:  # vpcd may not listen yet while pcscd starts
            try:
                sock = socket.create_connection(("127.0.0.1", self.port), timeout=1.0)
                break
            except OSError:
                if time.monotonic() > deadline:
                    raise
                time.sleep(0.05)
        sock.settimeout(None)
        sock.setsockopt(socket.IPPROTO_TCP, socket.TCP_NODELAY, 1)
        self._pull.clear()
        self._pulled.clear()
        self._sock = sock
        self._thread = threading.Thread(target=self._serve, args=(sock,), name=f"vicc:{self.port}", daemon=True)
        self._thread.start()

    def remove(self, timeout: float = 2.0, settle: float = 0.1) -> None:
        """Pull the card: hang up at vpcd's next poll (pcscd polls every
        400 ms), or after ``timeout`` s if vpcd does not poll (pcscd gone).

        Then wait ``settle`` s: vpcd accepts a waiting connection within the
        very poll that found the card gone, so an insert() right away would
        be a silent swap.
        """
        sock = self._sock
        if sock is None:
            return
        self._pull.set()
        if self._pulled.wait(timeout):
            time.sleep(settle)
        else:
            self.removed_at = time.monotonic()
        self._sock = None
        try:
            sock.shutdown(socket.SHUT_RDWR)
        except OSError:
            pass
        sock.close()
        if self._thread is not None:
            self._thread.join(2)
            self._thread = None
        self.powered = False

    def _serve(self, sock: socket.socket) -> None:
        after_power = False  # the ATR request after a power on/off/reset is part of it
        try:
            while True:
                head = _recv_exact(sock, 2)
                if head is None:
                    return
                (length,) = struct.unpack(">H", head)
                body = _recv_exact(sock, length) if length else b""
                if body is None:
                    return
                if length == 1:
                    ctrl = body[0]
                    if ctrl == _CTRL_ATR:
                        # A lone ATR request is vpcd's presence poll: hang up
                        # on it to be pulled.  The one that completes a power
                        # on/off/reset is not a poll, so answer it.
                        if self._pull.is_set() and not after_power:
                            self.removed_at = time.monotonic()
                            self._pulled.set()
                            try:
                                sock.shutdown(socket.SHUT_RDWR)
                            except OSError:
                                pass
                            return
                        sock.sendall(struct.pack(">H", len(self.atr)) + self.atr)
                        after_power = False
                    elif ctrl in (_CTRL_ON, _CTRL_RESET, _CTRL_OFF):
                        self.powered = ctrl != _CTRL_OFF
                        after_power = True
                    continue
                after_power = False
                self.apdus.append(body)
                reply = self.handler(body)
                sock.sendall(struct.pack(">H", len(reply)) + reply)
        except OSError:
            return  # hung up while talking: that is what removal is

    def __enter__(self) -> VirtualCard:
        self.insert()
        return self

    def __exit__(self, *exc) -> None:
        self.remove()


def _recv_exact(sock: socket.socket, n: int) -> bytes | None:
    buf = bytearray()
    while len(buf) < n:
        chunk = sock.recv(n - len(buf))
        if not chunk:
            return None
        buf += chunk
    return bytes(buf)


_process_pcscd: PrivatePcscd | None = None


def process_pcscd(workdir: Path | None = None) -> PrivatePcscd:
    """The private pcscd of this test process, with one vpcd reader config
    ("Virtual PCD": readers "Virtual PCD 00 00" and "Virtual PCD 00 01").

    One per process because libpcsclite reads ``PCSCLITE_CSOCK_NAME`` once per
    process: this sets it (before any PC/SC call must have happened) and every
    in-process PC/SC client then talks to this daemon.  Not started yet: call
    ``start()`` (again after ``stop()``/``kill()``); it is stopped and its
    directory removed when the process exits.
    """
    global _process_pcscd
    if _process_pcscd is None:
        import atexit
        import tempfile

        owned = workdir is None
        workdir = Path(workdir or tempfile.mkdtemp(prefix="cisbridge-pcscd-"))
        daemon = PrivatePcscd(workdir)
        daemon.add_vpcd("Virtual PCD")
        os.environ["PCSCLITE_CSOCK_NAME"] = daemon.socket_path
        _process_pcscd = daemon

        def cleanup() -> None:
            daemon.close()
            if owned:
                shutil.rmtree(workdir, ignore_errors=True)

        atexit.register(cleanup)
    return _process_pcscd


class Events:
    """A ReaderMonitor listener that records what it is told, for tests to
    wait on: ``monitor.start(events)``, then ``events.next()``."""

    def __init__(self):
        self._queue: queue.Queue = queue.Queue()
        self.seen: list[tuple] = []

    def __call__(self, kind, reader, atr):
        self._queue.put((kind, reader, atr))

    def next(self, timeout: float = 5.0) -> tuple:
        """The next event; AssertionError if none comes within ``timeout``
        (pcscd polls vpcd every 400 ms, so 5 s is generous)."""
        try:
            event = self._queue.get(timeout=timeout)
        except queue.Empty:
            raise AssertionError(f"no PC/SC event within {timeout} s (seen before: {self.seen})") from None
        self.seen.append(event)
        return event

    def take(self, n: int, timeout: float = 5.0) -> list[tuple]:
        return [self.next(timeout) for _ in range(n)]

    def pending(self) -> list[tuple]:
        """Events that arrived and were not taken yet, without waiting."""
        out = []
        while True:
            try:
                out.append(self._queue.get_nowait())
            except queue.Empty:
                return out


def wait_until(predicate, timeout: float = 5.0, step: float = 0.02) -> None:
    """Poll ``predicate`` until true; AssertionError after ``timeout`` s."""
    deadline = time.monotonic() + timeout
    while not predicate():
        if time.monotonic() > deadline:
            raise AssertionError(f"condition not met within {timeout} s")
        time.sleep(step)


VICC = "/usr/bin/vicc"
VICC_PYTHONPATH = "/usr/lib/python3/site-packages/virtualsmartcard"


class Vicc:
    """vsmartcard's own virtual card (Debian's vsmartcard-vpicc), run with this
    interpreter (it needs pycryptodome, a test dependency): starting it
    inserts the card, stopping it removes it."""

    def __init__(self, port: int, card_type: str = "iso7816"):
        self.port = port
        self.card_type = card_type
        self.proc: subprocess.Popen | None = None

    @staticmethod
    def missing() -> str | None:
        if not os.path.exists(VICC):
            return "vicc is not installed (apt-get install vsmartcard-vpicc)"
        return None

    def insert(self) -> None:
        import sys

        env = {**os.environ, "PYTHONPATH": VICC_PYTHONPATH}
        self.proc = subprocess.Popen(
            [sys.executable, VICC, "-t", self.card_type, "-P", str(self.port)],
            env=env, stdin=subprocess.DEVNULL, stdout=subprocess.DEVNULL, stderr=subprocess.PIPE,
        )

    def remove(self) -> str:
        """Stop vicc; returns what it wrote to stderr."""
        if self.proc is None:
            return ""
        self.proc.terminate()
        try:
            _, err = self.proc.communicate(timeout=5)
        except subprocess.TimeoutExpired:
            self.proc.kill()
            _, err = self.proc.communicate()
        self.proc = None
        return err.decode(errors="replace")
