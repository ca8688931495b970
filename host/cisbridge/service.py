"""The service: decoded frames in, responses, prompts and events out.

It knows nothing of pipes or processes (``host.py`` does): it is given a
``send`` function and fed frames.  Every request is answered exactly once.
Requests whose handler completes at once (getStatus, getTicketNoAuth from a
live session) are answered inline; the others run as tasks, so a request
waiting on a prompt, a card or the network never holds back the rest.

Two threads feed it.  The event loop thread runs ``handle_frame`` and
everything else.  The host's reader thread first offers each frame to
``answer_now``, which answers getStatus and getTicketNoAuth on the spot when
that needs nothing of the event loop (once the service is settled, and no
earlier frame is still waiting for the loop); anything else goes to the loop,
in order.  What the reader thread reads is either immutable (config, policy)
or guarded (the reader monitor's lock, the agent's ``state_lock``); it never
changes the service's state.
"""

from __future__ import annotations

import asyncio
import importlib
import itertools
import logging
import time
from concurrent.futures import ThreadPoolExecutor
from typing import Any, Awaitable, Callable

from msgspec import Struct

from cisbridge import protocol as p
from cisbridge.config import Config, ConfigError
from cisbridge.framing import Oversize, leading_id
from cisbridge.origins import OriginPolicy
from cisbridge.protocol import CisError, ErrorCode

log = logging.getLogger("cisbridge.service")

#: method -> "module:function" of its handler, imported on first use.
HANDLERS = {
    "getStatus": "cisbridge.actions.status:get_status",
    "getTicket": "cisbridge.actions.ticket:get_ticket",
    "getTicketNoAuth": "cisbridge.actions.ticket:get_ticket_no_auth",
    "getCertificate": "cisbridge.actions.certificate:get_certificate",
    "sign": "cisbridge.actions.sign:sign",
}

#: method -> "module:function" giving its result on the reader thread when it
#: can: ``fn(service, agent)``, called under ``agent.state_lock``, returns the
#: result, or None when only the event loop can answer.
NOW_HANDLERS = {
    "getStatus": "cisbridge.actions.status:status_now",
    "getTicketNoAuth": "cisbridge.actions.ticket:ticket_no_auth_now",
}


class _Request:
    """One request in flight: the RequestContext handlers see."""

    __slots__ = ("id", "origin", "method", "service", "task", "prompts", "started", "abort")

    def __init__(self, service: Service, request_id: p.RequestId, origin: str, method: str):
        self.id = request_id
        self.origin = origin
        self.method = method
        self.service = service
        self.task: asyncio.Task | None = None
        self.prompts: set[int] = set()
        self.started = time.perf_counter()
        #: set when the service ends the request itself (card removed)
        self.abort: CisError | None = None

    @property
    def config(self) -> Config:
        return self.service.config

    async def prompt(self, kind: str, data: Any) -> str | bool:
        return await self.service.prompt(self, kind, data)

    async def run_blocking(self, fn: Callable[..., Any], *args: Any) -> Any:
        return await self.service.run_blocking(fn, *args)

    def emit(self, event: str, data: Any) -> None:
        self.service.emit(event, data)


class _Prompt:
    __slots__ = ("number", "request", "kind", "data", "future")

    def __init__(self, number: int, request: _Request, kind: str, data: Any, future: asyncio.Future):
        self.number, self.request, self.kind, self.data, self.future = number, request, kind, data, future


class Service:
    def __init__(
        self,
        config: Config,
        send: Callable[[Any], None],
        *,
        config_error: ConfigError | None = None,
        caller: str | None = None,
    ):
        self.config = config
        self.send = send
        self.config_error = config_error
        self.caller = caller
        self.policy = OriginPolicy(config.allowed_origins)
        self.pending: dict[p.RequestId, _Request] = {}
        self.prompts: dict[int, _Prompt] = {}
        self._prompt_numbers = itertools.count(1)
        self._handlers: dict[str, Callable[..., Any]] = {}
        #: the reader thread's answerers, filled in by the loop as it imports handlers
        self._now: dict[str, Callable[..., Any]] = {}
        self._decode_now: Callable[[bytes], Any] | None = None
        #: frames the reader thread gave the loop, and the loop has handled:
        #: each counter is written by one thread only
        self.handed = 0
        self.handled = 0
        #: the loop is handling a handed frame whose count is not in handled yet
        self._handing = False
        self._settled = False
        self._executor: ThreadPoolExecutor | None = None
        self._agent = None
        self._closing = False
        #: the PC/SC reader monitor, started by the first allowed request
        self.monitor = None
        #: the PKCS#11 card (cisbridge.card.get_card makes it on first use)
        self.card = None
        self.refusal = self._refusal()

    # ------------------------------------------------------------------ setup

    def _refusal(self) -> CisError | None:
        """Why every request must be refused, if it must."""
        if self.caller is None or self.caller not in self.config.allowed_extensions:
            who = self.caller or "an unknown program (no extension id in the command line)"
            return CisError(
                ErrorCode.ORIGIN_NOT_ALLOWED,
                f"cisbridge refuses requests from {who}: it is not in allowed_extensions. "
                "If this is your organisation's cisbridge extension, add its id to "
                "allowed_extensions in the cisbridge configuration.",
                {"extension": self.caller},
            )
        if self.config_error is not None:
            e = self.config_error
            return CisError(
                ErrorCode.INTERNAL,
                f"cisbridge cannot start: the configuration is invalid — {e}. "
                "Fix it (or ask your IT team), then run `cisbridge doctor`.",
                {"config": e.detail},
            )
        return None

    @property
    def agent(self):
        if self._agent is None:
            from cisbridge import agents

            self._agent = agents.create(self.config, self)
        return self._agent

    def readers(self) -> tuple[list[p.Reader], str]:
        """The readers as last seen, and "ok" or why PC/SC is unavailable."""
        if self.monitor is None:
            return [], "unavailable: the reader monitor is not running"
        readers, status = self.monitor.view()
        return [p.Reader(name, present) for name, present in readers], status

    def _start_monitor(self) -> None:
        """Watch readers from the first allowed request on: card events need no
        polling (the monitor waits in SCardGetStatusChange)."""
        loop = asyncio.get_running_loop()

        def on_event(kind: str, reader: str, atr: str | None) -> None:  # monitor thread
            loop.call_soon_threadsafe(self.card_event, kind, reader, atr)

        try:
            from cisbridge.card.pcsc import ReaderMonitor

            self.monitor = ReaderMonitor()
            # Not on the loop: getStatus waits for the first look off the loop.
            self.monitor.start(on_event, wait=0)
        except Exception as exc:  # no PC/SC library at all: everything else still works
            log.warning("reader monitor unavailable: %s", exc)
            self.monitor = _NoMonitor(f"unavailable: {exc}")

    def card_event(self, kind: str, reader: str, atr: str | None) -> None:
        """A card came or went: tell the pages, end what depended on the card."""
        if kind == "cardInserted":
            self.emit("cardInserted", p.CardEventData(reader, atr))
        elif kind == "cardRemoved":
            self.emit("cardRemoved", p.CardEventData(reader, atr))
            self._card_removed(reader)

    def _card_removed(self, reader: str) -> None:
        card_methods = {"sign", "getCertificate"}
        if self.config.agent.kind == "gas":
            card_methods.add("getTicket")
        for ctx in list(self.pending.values()):
            if ctx.method in card_methods and ctx.task is not None and ctx.abort is None:
                ctx.abort = CisError(
                    ErrorCode.CARD_REMOVED,
                    "The smartcard was removed. Insert it and try again.",
                    {"reader": reader},
                )
                ctx.task.cancel()
        if self.card is not None:  # may wait for a signing thread: not on the loop
            asyncio.ensure_future(self.run_blocking(self.card.card_removed))
        if self._agent is not None:
            self._agent.card_removed(reader)

    def _handler(self, method: str) -> Callable[..., Any]:
        fn = self._handlers.get(method)
        if fn is None:
            fn = _load(HANDLERS[method])
            if method in NOW_HANDLERS:
                self._now[method] = _load(NOW_HANDLERS[method])
            self._handlers[method] = fn
        return fn

    # ---------------------------------------------------------------- frames

    def answer_now(self, payload: bytes | Oversize) -> Any:
        """On the reader thread: answer ``payload`` here if that needs nothing
        of the event loop.  Returns None when it did; otherwise what the loop
        is to be handed (``handle_handed``): the request, when it was decoded
        here (so it is not decoded twice), else the frame itself.  The loop
        answers everything else, errors included, and logs them."""
        if self.handed != self.handled or self._closing or isinstance(payload, Oversize):
            return payload  # (an earlier frame is still with the loop: it goes first)
        if not self._settled:
            # Until the loop has made the agent and the reader monitor has
            # had its first look, the loop answers everything.
            monitor = self.monitor
            self._settled = (
                self.refusal is None and self._agent is not None and monitor is not None and monitor.ready_now()
            )
            if not self._settled:
                return payload
        decode = self._decode_now
        if decode is None:
            decode = self._decode_now = p.request_decoder()
        try:
            request = decode(payload)
        except CisError:
            return payload  # the loop decodes it again, to answer with the id it can salvage
        now = self._now.get(p.method_of(request))
        if now is None or request.id in self.pending:
            return request
        try:
            origin = self.policy.check(request.origin)
            agent = self._agent
            with agent.state_lock:  # see Agent.state_lock: no ticket after its sessionEnded
                result = now(self, agent)
                if result is None:
                    return request
                if log.isEnabledFor(logging.DEBUG):
                    log.debug("%s %r from %s ok at once", p.method_of(request), request.id, origin)
                self.send(p.ResultFrame(request.id, result))
                return None
        except CisError:
            return request
        except Exception:
            log.exception("answering on the reader thread failed; the event loop takes it")
            return request

    def handle_handed(self, item: Any) -> None:
        """What the reader thread could not answer, on the loop (``answer_now``).

        ``handled`` counts it done before the first frame the loop sends while
        handling it (its answer, usually: by then everything the reader thread
        must see of it is in place), else when handling ends (a task was
        started).  Counting only at the end would let a quick page's next
        request, sent on receiving this answer, find the count behind and go
        to the loop too, and the next, and so on."""
        self._handing = True
        try:
            if isinstance(item, bytes | Oversize):
                self.handle_frame(item)
            else:
                self._guarded(self._handle_request, item)
        finally:
            if self._handing:
                self._handing = False
                self.handled += 1

    def _send(self, frame: Any) -> None:
        """Every frame the loop sends (see ``handle_handed`` for the count)."""
        if self._handing:
            self._handing = False
            self.handled += 1
        self.send(frame)

    def handle_frame(self, payload: bytes | Oversize) -> None:
        """Answer one frame; whatever happens, the host goes on serving."""
        self._guarded(self._handle_frame, payload)

    def _guarded(self, handle: Callable[[Any], None], item: Any) -> None:
        try:
            handle(item)
        except Exception:
            log.exception("frame handling failed")
            self._fail(None, _internal())

    def _handle_frame(self, payload: bytes | Oversize) -> None:
        if isinstance(payload, Oversize):
            self._fail(
                leading_id(payload.prefix),
                CisError(
                    ErrorCode.INVALID_REQUEST,
                    f"request too large: {payload.size} bytes, the limit is "
                    f"{self.config.host.max_request_bytes} ([host] max_request_bytes)",
                ),
            )
            return
        try:
            request = p.decode_request(payload)
        except CisError as exc:
            self._fail(p.salvage_id(payload), exc)
            return
        self._handle_request(request)

    def _handle_request(self, request: Any) -> None:
        method = p.method_of(request)
        try:
            if self.refusal is not None:
                raise self.refusal
            origin = self.policy.check(request.origin)
            if self.monitor is None and not self._closing:
                self._start_monitor()
            if method == "promptReply":
                self._prompt_reply(origin, request.params)
                self._send(p.ResultFrame(request.id, p.Empty()))
                return
            if method == "cancel":
                self._cancel(origin, request.params.request)
                self._send(p.ResultFrame(request.id, p.Empty()))
                return
            if request.id in self.pending:
                raise CisError(ErrorCode.INVALID_REQUEST, f"request id {request.id!r} is already in use by a request in flight")
            if len(self.pending) >= self.config.host.max_outstanding:
                raise CisError(
                    ErrorCode.BUSY,
                    f"cisbridge is busy with {len(self.pending)} requests; try again shortly",
                )
            ctx = _Request(self, request.id, origin, method)
            outcome = self._handler(method)(ctx, request.params)
        except CisError as exc:
            self._fail(request.id, exc, method)
            return
        except Exception:
            log.exception("%s %r failed", method, request.id)
            self._fail(request.id, _internal(), method)
            return
        if isinstance(outcome, Struct):  # every result is a Struct: answered at once
            self._answer(ctx, outcome)
        else:
            self.pending[request.id] = ctx
            ctx.task = asyncio.ensure_future(self._finish(ctx, outcome))

    async def _finish(self, ctx: _Request, outcome: Awaitable[Any]) -> None:
        try:
            result = await outcome
        except CisError as exc:
            self._fail(ctx.id, exc, ctx.method)
        except asyncio.CancelledError:
            if not self._closing:
                error = ctx.abort or CisError(ErrorCode.USER_CANCELLED, "The request was cancelled.")
                self._fail(ctx.id, error, ctx.method)
        except Exception:
            log.exception("%s %r failed", ctx.method, ctx.id)
            self._fail(ctx.id, _internal(), ctx.method)
        else:
            self._answer(ctx, result)
        finally:
            self.pending.pop(ctx.id, None)

    def _answer(self, ctx: _Request, result: Any) -> None:
        if log.isEnabledFor(logging.DEBUG):
            log.debug("%s %r from %s ok in %.1f ms", ctx.method, ctx.id, ctx.origin, (time.perf_counter() - ctx.started) * 1000)
        self._send(p.ResultFrame(ctx.id, result))

    def _fail(self, request_id: p.RequestId | None, exc: CisError, method: str = "?") -> None:
        level = logging.WARNING if exc.code in (ErrorCode.INTERNAL, ErrorCode.ORIGIN_NOT_ALLOWED) else logging.INFO
        log.log(level, "%s %r -> %s: %s", method, request_id, exc.code.value, exc.message)
        self._send(p.ErrorFrame(request_id, p.ErrorBody(exc.code, exc.message, exc.detail)))

    # ------------------------------------------------------ control methods

    def _cancel(self, origin: str, target_id: p.RequestId) -> None:
        ctx = self.pending.get(target_id)
        # Only the origin that made a request may cancel it; a finished or
        # unknown request is not an error (the race is normal).
        if ctx is not None and ctx.origin == origin and ctx.task is not None:
            log.info("%s %r cancelled", ctx.method, ctx.id)
            ctx.task.cancel()

    def _prompt_reply(self, origin: str, params: p.PromptReplyParams) -> None:
        entry = self.prompts.get(params.prompt)
        if entry is None or entry.request.origin != origin:
            raise CisError(ErrorCode.INVALID_REQUEST, f"no open prompt {params.prompt} (it may have ended already)")
        if entry.future.done():
            raise CisError(ErrorCode.INVALID_REQUEST, f"prompt {params.prompt} has already been answered")
        if params.cancel:
            entry.future.set_exception(CisError(ErrorCode.USER_CANCELLED, "You cancelled."))
            return
        entry.future.set_result(_prompt_value(entry, params.value))

    # --------------------------------------------------------------- prompts

    async def prompt(self, ctx: _Request, kind: str, data: Any) -> str | bool:
        number = next(self._prompt_numbers)
        future = asyncio.get_running_loop().create_future()
        self.prompts[number] = _Prompt(number, ctx, kind, data, future)
        ctx.prompts.add(number)
        log.info("%s %r prompts for %s (prompt %d)", ctx.method, ctx.id, kind, number)
        self._send(p.PromptFrame(number, ctx.id, kind, data))  # type: ignore[arg-type]
        timeout = self.config.host.prompt_timeout
        try:
            return await asyncio.wait_for(future, timeout)
        except TimeoutError:
            raise CisError(
                ErrorCode.TIMEOUT, f"Nobody answered the {kind} prompt within {timeout:g} seconds.", {"prompt": kind}
            ) from None
        finally:
            self.prompts.pop(number, None)
            ctx.prompts.discard(number)

    # ------------------------------------------------------ events, threads

    def emit(self, event: str, data: Any) -> None:
        log.info("event %s", event)
        self._send(p.EventFrame(event, data))  # type: ignore[arg-type]

    async def run_blocking(self, fn: Callable[..., Any], *args: Any) -> Any:
        if self._executor is None:
            self._executor = ThreadPoolExecutor(max_workers=8, thread_name_prefix="cisbridge-blocking")
        return await asyncio.get_running_loop().run_in_executor(self._executor, fn, *args)

    # -------------------------------------------------------------- shutdown

    async def close(self) -> None:
        """End every request and release agents and card, within half a second."""
        self._closing = True
        for ctx in list(self.pending.values()):
            if ctx.task is not None:
                ctx.task.cancel()
        closers = []
        if self._agent is not None:
            closers.append(self._agent.close())
        if self.card is not None:
            closers.append(self.card.aclose())
        if self.monitor is not None:
            closers.append(self.run_blocking(self.monitor.stop, 0.4))
        if closers:
            try:
                await asyncio.wait_for(asyncio.gather(*closers, return_exceptions=True), 0.5)
            except TimeoutError:
                log.warning("shutdown: an agent or the card did not close within 0.5 s")
        if self._executor is not None:
            self._executor.shutdown(wait=False, cancel_futures=True)


class _NoMonitor:
    """Stands where the reader monitor would, when PC/SC cannot be loaded."""

    def __init__(self, why: str):
        self.why = why

    def readers(self) -> list[tuple[str, bool]]:
        return []

    def view(self) -> tuple[list[tuple[str, bool]], str]:
        return [], self.why

    def status(self) -> str:
        return self.why

    def stop(self, timeout: float = 0) -> bool:
        return True

    def wait_ready(self, timeout: float | None = None) -> bool:
        return True

    def ready_now(self) -> bool:
        return True


def _prompt_value(entry: _Prompt, value: Any) -> str | bool:
    """Check a prompt answer against what was asked."""
    kind = entry.kind
    if kind == "pin" and isinstance(value, str):
        return value
    if kind == "consent" and value is True:
        return True
    if kind == "role" and isinstance(value, str):
        offered = {role.id for role in getattr(entry.data, "roles", [])}
        if value in offered:
            return value
        raise CisError(ErrorCode.INVALID_REQUEST, "that role was not offered in this prompt")
    expected = {"pin": "a string (the passcode)", "consent": "true", "role": "a role id (string)"}[kind]
    raise CisError(ErrorCode.INVALID_REQUEST, f"a {kind} prompt is answered with {expected}, or cancel: true")


def _load(where: str) -> Callable[..., Any]:
    module_name, _, name = where.partition(":")
    return getattr(importlib.import_module(module_name), name)


def _internal() -> CisError:
    return CisError(
        ErrorCode.INTERNAL,
        "Something went wrong inside cisbridge. The details are in the cisbridge log; "
        "`cisbridge doctor` shows where it is.",
    )
