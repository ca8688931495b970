"""``cisbridge host``: the native messaging host the browser launches.

Order matters for start-up time and safety:
1. take the real stdout for frames and point fd 1 (and ``sys.stdout``) at
   stderr, so nothing else — a stray print, a C library — can corrupt the stream;
2. read and merge the configuration files (parsed ones from the parse cache,
   ``configcache``) and write ``ready`` before importing tomllib, json,
   msgspec, asyncio or the service: the browser waits for it;
3. validate the configuration against the schema (an invalid one does not
   stop the host: it answers every request with an error naming the file and
   key, because a host that exits only makes the browser say "Native host has
   exited");
4. serve until stdin ends, SIGTERM or SIGINT, then exit 0 within a second.

Frames are read by a thread of their own, blocked in ``read``: it answers
what needs nothing of the event loop itself (``Service.answer_now``: a
getStatus round trip then costs about what a C echo host's does) and hands
everything else to the loop in order.  Whole frames are written under a lock,
from either thread.
"""

from __future__ import annotations

import _thread  # built in: threading costs ms before ready (functools, collections)
import os
import sys

from cisbridge import PROTOCOL, __version__
from cisbridge.framing import HEADER


class _Pipe:
    """The frame output: the real stdout.  Frames are encoded and written whole
    under a lock: the reader thread and the event loop thread both send."""

    def __init__(self, fd: int):
        self.fd = fd
        self.broken = False
        self.on_broken = None
        self._lock = _thread.allocate_lock()

    def send(self, frame) -> None:
        p = _protocol()
        with self._lock:  # one encoder, one stream
            payload = p.encode(frame)
            if len(payload) > p.MAX_OUTGOING:
                # Handlers bound their answers before doing the work; this is
                # the last line of defence, so the browser never drops the
                # connection.
                if not isinstance(frame, p.ErrorFrame | p.ResultFrame):
                    return
                import logging

                logging.getLogger("cisbridge.host").error("answer to %r too large (%d bytes)", frame.id, len(payload))
                message = "The answer would be larger than the browser accepts (1 MiB)."
                payload = p.encode(p.ErrorFrame(frame.id, p.ErrorBody(p.ErrorCode.INTERNAL, message)))
            self._write(HEADER.pack(len(payload)) + payload)

    def write(self, data: bytes) -> None:
        with self._lock:
            self._write(data)

    def _write(self, data: bytes) -> None:
        if self.broken:
            return
        view = memoryview(data)
        try:
            while view:
                try:
                    view = view[os.write(self.fd, view) :]
                except BlockingIOError:  # a browser that handed us a non-blocking pipe
                    import select

                    select.select([], [self.fd], [])
        except OSError:  # the browser went away
            self.broken = True
            if self.on_broken:
                self.on_broken()


def _protocol():
    """cisbridge.protocol, imported after ready (it brings msgspec)."""
    global _p
    if _p is None:
        from cisbridge import protocol

        _p = protocol
    return _p


_p = None


def _write_ready(pipe: _Pipe, agent: str, allowed: list[str]) -> None:
    """The ``ready`` event (protocol.ReadyData), encoded here: the browser
    hears from the host before json (or msgspec) is even imported.  The agent
    kind comes from TOML not yet validated: every string is escaped."""
    payload = (
        '{"event":"ready","data":{"version":' + _json_string(__version__)
        + ',"protocol":' + str(int(PROTOCOL))
        + ',"agent":' + _json_string(agent)
        + ',"allowedOrigins":[' + ",".join(map(_json_string, allowed)) + "]}}"
    ).encode()
    pipe.write(HEADER.pack(len(payload)) + payload)


def _json_string(text: str) -> str:
    """A JSON string literal: quote and backslash escaped, control characters
    and lone surrogates as \\u escapes, everything else as itself (UTF-8)."""
    if text.isprintable() and '"' not in text and "\\" not in text:
        return '"' + text + '"'
    out = []
    for ch in text:
        if ch == '"' or ch == "\\":
            out.append("\\" + ch)
        elif ch < " " or "\ud800" <= ch <= "\udfff":
            out.append(f"\\u{ord(ch):04x}")
        else:
            out.append(ch)
    return '"' + "".join(out) + '"'


def _take_stdio() -> tuple[int, int]:
    in_fd = os.dup(0)
    out_fd = os.dup(1)
    os.dup2(2, 1)
    devnull = os.open(os.devnull, os.O_RDONLY)
    os.dup2(devnull, 0)
    os.close(devnull)
    sys.stdout = sys.stderr
    if sys.platform == "win32":
        import msvcrt

        msvcrt.setmode(in_fd, os.O_BINARY)
        msvcrt.setmode(out_fd, os.O_BINARY)
    return in_fd, out_fd


#: What launchers run (``python -I -c LAUNCH CALLER…``): ``-c`` rather than
#: ``-m cisbridge host`` skips runpy and the CLI, a few ms of every cold start.
LAUNCH = "from cisbridge.host import run; run()"


def run() -> None:
    """Entry point for ``python -c LAUNCH``: the browser's arguments follow."""
    raise SystemExit(main(sys.argv[1:]))


def main(argv: list[str]) -> int:
    in_fd, out_fd = _take_stdio()
    pipe = _Pipe(out_fd)

    from cisbridge import configfiles
    from cisbridge.configcache import ParseCache
    from cisbridge.origins import caller_from_argv

    caller = caller_from_argv(argv)
    cache = ParseCache.in_user_cache_dir()
    raw, config_error = None, None
    try:
        raw = configfiles.read(cache=cache)
    except configfiles.ConfigError as exc:
        config_error = exc
    kind, allowed = configfiles.ready_view(raw, caller) if raw is not None else ("none", [])
    _write_ready(pipe, kind, allowed)
    cache.save()  # after ready: the browser does not wait for it

    from cisbridge import config as cfg

    loaded = None
    if raw is not None:
        try:
            loaded = cfg.validate(raw)
        except cfg.ConfigError as exc:
            config_error = exc
    config = loaded.config if loaded is not None else cfg.Config()
    caller_ok = caller is not None and caller in config.allowed_extensions

    from cisbridge import logs

    logs.setup(config.logging.level)
    import logging

    log = logging.getLogger("cisbridge.host")
    log.info("host %s started by %s (pid %d)", __version__, caller or "unknown caller", os.getpid())
    if config_error is not None:
        log.error("invalid configuration: %s", config_error)
    elif loaded is not None:
        for warning in loaded.warnings:
            log.warning("%s", warning)
    if not caller_ok:
        log.warning("refusing every request: caller %r is not in allowed_extensions", caller)

    import asyncio

    from cisbridge.service import Service

    async def serve() -> None:
        loop = asyncio.get_running_loop()
        service = Service(config, pipe.send, config_error=config_error, caller=caller)
        stopping = asyncio.Event()
        pipe.on_broken = lambda: loop.call_soon_threadsafe(stopping.set)
        _read_frames(loop, in_fd, config.host.max_request_bytes, service, stopping, log)
        _on_signals(loop, stopping)
        await stopping.wait()
        await service.close()

    asyncio.run(serve())
    log.info("host exiting")
    logging.shutdown()
    # Worker threads may be stuck in a card or DLL call; do not wait for them.
    os._exit(0)


def _read_frames(loop, fd: int, max_size: int, service, stopping, log) -> None:
    """Read stdin on a thread of its own (blocking reads: no event loop turn
    per frame).  Each frame is offered to ``service.answer_now``; the rest go
    to the loop in the order they came, then the end of input."""
    from cisbridge.framing import FrameDecoder

    decoder = FrameDecoder(max_size)

    def at_end(partial: bool) -> None:  # on the loop
        if partial:
            log.info("stdin closed in the middle of a frame")
        stopping.set()

    def pump() -> None:
        answer_now, hand = service.answer_now, service.handle_handed
        while True:
            try:
                data = os.read(fd, 1 << 16)
            except OSError:
                data = b""
            if not data:
                loop.call_soon_threadsafe(at_end, decoder.partial)
                return
            if stopping.is_set():
                return
            for frame in decoder.feed(data):
                rest = answer_now(frame)
                if rest is not None:
                    service.handed += 1
                    loop.call_soon_threadsafe(hand, rest)

    import threading

    threading.Thread(target=pump, name="cisbridge-stdin", daemon=True).start()


def _on_signals(loop, stopping) -> None:
    import signal

    for name in ("SIGTERM", "SIGINT", "SIGHUP"):
        sig = getattr(signal, name, None)
        if sig is None:
            continue
        try:
            loop.add_signal_handler(sig, stopping.set)
        except (NotImplementedError, RuntimeError):
            signal.signal(sig, lambda *_: loop.call_soon_threadsafe(stopping.set))
