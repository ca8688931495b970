"""``[agent] kind = "ticketapi"``: tickets from the NHS Identity Agent's Ticket API.

Where the NHS Identity Agent (IA) is installed it owns the card session: it shows
its own passcode and role dialogs and keeps the ticket.  This agent only asks it,
through the nine exports of ``TicketApiDll.dll`` (SPINE.md §1), bound with ctypes.

Facts the binding relies on (all from the public header ``ticket_api.h`` and the
Fujitsu SAML bridge that loads the DLL; see SPINE.md §1):

* C calling convention, 32-bit DLL on Windows: ``ctypes.CDLL`` (not ``WinDLL``),
  so the host must run on a 32-bit Python there.
* The export names really begin with an underscore: the header declares
  *function types* named ``_TcktApi_Initialize`` … and its users look the
  functions up with ``GetProcAddress(h, "_TcktApi_Initialize")``.  That
  underscore is therefore part of the name in the export table, not the cdecl
  decoration a linker adds (MSVC strips that one from cdecl exports).  We look
  each function up by that name first and fall back to the name without the
  underscore, so a build exporting the plain C names also works; no ``@N``
  (stdcall) names are tried because the header says cdecl.
* ``TCK_API_INSTANCE`` is ``long``; ``DWORD`` is 32 bits; buffers are ``char *``
  (single-byte ANSI text), sizes ``unsigned int``.  ``used`` receives the number
  of bytes written; on error "the parameters are not changed", so a
  ``BUFFER_TOO_SMALL`` may or may not tell us the size needed.

The DLL is not known to be thread-safe, so every call holds one lock; calls
block (the IA may show dialogs) and so run via ``run_blocking``.  Tickets are
never logged.
"""

from __future__ import annotations

import asyncio
import ctypes
import logging
import os
import sys
import threading
from dataclasses import dataclass
from typing import TYPE_CHECKING, Any, Callable

from cisbridge.agents.base import NO_SESSION, Agent
from cisbridge.protocol import CisError, ErrorCode

if TYPE_CHECKING:
    from cisbridge.agents.base import AgentHost
    from cisbridge.config import Config
    from cisbridge.context import RequestContext

log = logging.getLogger(__name__)

#: What ``library`` means when the config leaves it out (Windows only: elsewhere
#: there is no Identity Agent to default to).
DEFAULT_LIBRARY = "TicketApiDll.dll"
CONFIG_KEY = "[agent] library"

#: Ticket buffer: first size tried, and the most we ever offer.  Real tickets are
#: about 60–100 bytes; the bound keeps a misbehaving DLL from making us allocate
#: without end (and a ticket must fit in a 1 MiB native messaging frame anyway).
INITIAL_BUFFER = 512
MAX_BUFFER = 64 * 1024
#: How long getTicketNoAuth waits for its turn while a login (getTicket, which
#: may show the Identity Agent's windows) is running or queued before it
#: answers "no session yet" rather than wait as long as the person does.
NO_AUTH_WAIT_DURING_LOGIN = 0.25
#: Error descriptions are short sentences; longer ones are cut.
DESCRIPTION_BUFFER = 1024

#: ``_TcktApi_GetGAVersion`` components (ticket_api.h).
VERSION_API = 1
VERSION_ENGINE = 2

SUCCESS = 0x00000000


@dataclass(frozen=True)
class TckCode:
    name: str
    code: ErrorCode
    #: what happened and what to do, for the person at the screen
    message: str


_TRY_AGAIN = "Try again; if it keeps happening, restart the NHS Identity Agent or ask your IT team."
_IA_DOWN = (
    "The NHS Identity Agent is not available ({what}). Check that it is installed and "
    "running (it shows an icon in the notification area), then try again."
)

#: TCK_API_* codes.  The ones SPINE.md §1 lists come first; the rest are from the
#: same public header (ticket_api.h) and mapped by what they say.
TCK_CODES: dict[int, TckCode] = {
    0x80100004: TckCode("BUFFER_TOO_SMALL", ErrorCode.INTERNAL,
                        "The NHS Identity Agent returned a ticket too large to accept. " + _TRY_AGAIN),
    0x80100007: TckCode("SERVER_COMM_FAILED", ErrorCode.AGENT_UNAVAILABLE,
                        _IA_DOWN.format(what="cisbridge could not talk to it")),
    0x80100009: TckCode("TICKET_NOT_AVAILABLE", ErrorCode.AUTHENTICATION_FAILED,
                        "There is no NHS smartcard session. Insert your card and log in, then try again."),
    0x80200002: TckCode("READER_NOT_AVAILABLE", ErrorCode.NO_READER,
                        "No smartcard reader was found. Connect your reader and try again."),
    # The IA uses this both for "no card" and for "a card, but not an NHS
    # smartcard"; either way the person's remedy is to insert their NHS card.
    0x80200003: TckCode("SMARTCARD_NOT_VALID", ErrorCode.NO_CARD,
                        "No valid NHS smartcard is in the reader. Insert your NHS smartcard and try again."),
    0x80200004: TckCode("PIN_BLOCKED", ErrorCode.PIN_LOCKED,
                        "Your smartcard is locked after too many wrong passcodes. Ask your "
                        "Registration Authority (RA) to unlock it."),
    0x80200006: TckCode("NO_CERT_FOUND", ErrorCode.NO_CERTIFICATE,
                        "No certificate was found on the smartcard. Ask your Registration "
                        "Authority (RA) to check your card."),
    0x80400001: TckCode("USER_ABORT", ErrorCode.USER_CANCELLED,
                        "The smartcard login was cancelled."),
    0x80400002: TckCode("AUTHENTICATION_FAILED", ErrorCode.AUTHENTICATION_FAILED,
                        "The smartcard login failed. Check your card and passcode and try again; "
                        "if it keeps failing, ask your Registration Authority (RA)."),
    0x80400005: TckCode("AUTHSERVER_NOT_AVAILABLE", ErrorCode.AGENT_UNAVAILABLE,
                        "The NHS authentication service cannot be reached. Check the network "
                        "connection (HSCN) and try again later."),
    0x80400007: TckCode("AUTH_NOT_VALID", ErrorCode.AUTHENTICATION_FAILED,
                        "Your smartcard session is no longer valid. Log in with your card again."),
    0x80800002: TckCode("NOT_INSTALLED", ErrorCode.AGENT_UNAVAILABLE,
                        _IA_DOWN.format(what="it does not appear to be installed")),
    0x80800003: TckCode("NO_SERVERFOUND", ErrorCode.AGENT_UNAVAILABLE,
                        "The NHS Identity Agent has no authentication server configured. "
                        "Ask your IT team to check its configuration."),
    # --- further codes of ticket_api.h (not in SPINE.md §1)
    0x80100001: TckCode("INTERNAL", ErrorCode.INTERNAL,
                        "The NHS Identity Agent reported an internal error. " + _TRY_AGAIN),
    0x80100002: TckCode("NOT_INITIALIZED", ErrorCode.INTERNAL,
                        "The NHS Identity Agent was not ready. " + _TRY_AGAIN),
    0x80100003: TckCode("INVALID_PARAMETER", ErrorCode.INTERNAL,
                        "The NHS Identity Agent refused the request. " + _TRY_AGAIN),
    0x80100005: TckCode("INVALID_INSTANCE_HANDLE", ErrorCode.INTERNAL,
                        "The connection to the NHS Identity Agent was lost. " + _TRY_AGAIN),
    0x80100006: TckCode("SERVER_BUSY", ErrorCode.BUSY,
                        "The NHS Identity Agent is busy with another request. Finish or close "
                        "its open window, then try again."),
    0x80100008: TckCode("RESOURCE_ALLOCATION_FAILED", ErrorCode.INTERNAL,
                        "The NHS Identity Agent ran out of resources. " + _TRY_AGAIN),
    0x8010000A: TckCode("INTERNAL_ERROR", ErrorCode.INTERNAL,
                        "The NHS Identity Agent reported an internal error. " + _TRY_AGAIN),
    0x8010000B: TckCode("NOT_IMPLEMENTED", ErrorCode.AGENT_UNAVAILABLE,
                        "This version of the NHS Identity Agent does not support the request. "
                        "Ask your IT team to update it."),
    0x80200001: TckCode("SMARTCARD_NOT_SUPPORTED", ErrorCode.NO_CARD,
                        "The card in the reader is not a supported NHS smartcard. Insert your "
                        "NHS smartcard and try again."),
    0x80200005: TckCode("CARD_TRANSACTION_FAILED", ErrorCode.CARD_REMOVED,
                        "The smartcard stopped responding (was it removed?). Insert it again and retry."),
    0x80200007: TckCode("NO_KEY_FOUND", ErrorCode.NO_CERTIFICATE,
                        "No key was found on the smartcard. Ask your Registration Authority (RA) "
                        "to check your card."),
    0x80400003: TckCode("AUTHENTICATION_NOT_POSSIBLE", ErrorCode.AUTHENTICATION_FAILED,
                        "Smartcard login is not possible right now. Try again; if it keeps "
                        "failing, ask your IT team."),
    0x80400004: TckCode("USER_NOT_VALID", ErrorCode.AUTHENTICATION_FAILED,
                        "Your NHS user account was not accepted. Ask your Registration Authority (RA)."),
    0x80400006: TckCode("AUTHDATA_SYNTAX_ERROR", ErrorCode.AUTHENTICATION_FAILED,
                        "The NHS authentication service sent an answer that could not be read. " + _TRY_AGAIN),
    0x80400008: TckCode("AUTHMETHOD_NOT_SUPPORTED", ErrorCode.AUTHENTICATION_FAILED,
                        "The NHS authentication service does not support this login method. "
                        "Ask your IT team."),
    0x80800001: TckCode("VERSION_CONFLICT", ErrorCode.AGENT_UNAVAILABLE,
                        "The NHS Identity Agent's components do not match. Ask your IT team to "
                        "reinstall it."),
    0x80800004: TckCode("LOAD_RES_FAILED", ErrorCode.AGENT_UNAVAILABLE,
                        _IA_DOWN.format(what="it could not load its resources")),
    0x80800005: TckCode("AUTHMETHOD_NOT_AVAILABLE", ErrorCode.AGENT_UNAVAILABLE,
                        "The NHS Identity Agent has no smartcard login method available. Ask your IT team."),
    0x80800006: TckCode("AUTHMETHOD_NOT_POSSIBLE", ErrorCode.AGENT_UNAVAILABLE,
                        "The NHS Identity Agent cannot log in with a smartcard here. Ask your IT team."),
    0x80800007: TckCode("RESOURCE_NOT_AVAILABLE", ErrorCode.AGENT_UNAVAILABLE,
                        _IA_DOWN.format(what="a resource it needs is missing")),
}

BUFFER_TOO_SMALL = 0x80100004
TICKET_NOT_AVAILABLE = 0x80100009


def agent_code(code: int) -> str:
    """The wire form of a TCK code: ``0x80400001``."""
    return f"0x{code & 0xFFFFFFFF:08X}"


class _Exports:
    """The nine functions, with the header's exact C signatures."""

    #: (name in SPINE.md / ticket_api.h, restype, argtypes)
    SIGNATURES: list[tuple[str, Any, list[Any]]] = [
        ("_TcktApi_Initialize", ctypes.c_long, []),
        ("_TcktApi_GetGAVersion", ctypes.c_uint32, [ctypes.c_long, ctypes.c_int]),
        ("_TcktApi_getTicket", ctypes.c_int,
         [ctypes.c_long, ctypes.c_char_p, ctypes.c_uint, ctypes.POINTER(ctypes.c_uint)]),
        ("_TcktApi_getTicketNoAuth", ctypes.c_int,
         [ctypes.c_long, ctypes.c_char_p, ctypes.c_uint, ctypes.POINTER(ctypes.c_uint)]),
        ("_TcktApi_getNewTicket", ctypes.c_int,
         [ctypes.c_long, ctypes.c_char_p, ctypes.c_uint, ctypes.POINTER(ctypes.c_uint)]),
        ("_TcktApi_destroyTicket", ctypes.c_int, [ctypes.c_long]),
        ("_TcktApi_getLastError", ctypes.c_uint32, [ctypes.c_long]),
        ("_TcktApi_getErrorDescription", ctypes.c_int,
         [ctypes.c_long, ctypes.c_uint32, ctypes.c_char_p, ctypes.c_uint,
          ctypes.POINTER(ctypes.c_uint)]),
        ("_TcktApi_Finalize", None, [ctypes.c_long]),
    ]

    def __init__(self, dll: ctypes.CDLL, path: str) -> None:
        for name, restype, argtypes in self.SIGNATURES:
            fn = None
            for symbol in (name, name.lstrip("_")):
                try:
                    fn = getattr(dll, symbol)
                    break
                except AttributeError:
                    continue
            if fn is None:
                raise CisError(
                    ErrorCode.AGENT_UNAVAILABLE,
                    f"The library {path} (set by {CONFIG_KEY}) is not the NHS Ticket API: it "
                    f"has no function {name}. Point {CONFIG_KEY} at the Identity Agent's "
                    f"TicketApiDll.dll.",
                    {"agent": "ticketapi", "library": path, "missing": name},
                )
            fn.restype = restype
            fn.argtypes = argtypes
            setattr(self, name.lstrip("_").split("_", 1)[1], fn)

    Initialize: Callable[[], int]
    GetGAVersion: Callable[[int, int], int]
    getTicket: Callable[..., int]
    getTicketNoAuth: Callable[..., int]
    getNewTicket: Callable[..., int]
    destroyTicket: Callable[[int], int]
    getLastError: Callable[[int], int]
    getErrorDescription: Callable[..., int]
    Finalize: Callable[[int], None]


def _resolve(library: str) -> str:
    """Where to load ``library`` from.

    A bare name on Windows is looked for on PATH (where the Identity Agent's
    installer puts the DLL, and where the IA's own clients expect it), absolute
    PATH entries only; Python's own DLL search never looks there nor, rightly,
    in the current directory.
    """
    if sys.platform == "win32" and os.path.basename(library) == library:
        for entry in os.environ.get("PATH", "").split(os.pathsep):
            if entry and os.path.isabs(entry):
                candidate = os.path.join(entry, library)
                if os.path.isfile(candidate):
                    return candidate
    return library


def load_library(library: str) -> _Exports:
    """Load the Ticket API library and bind its exports, or raise AGENT_UNAVAILABLE."""
    path = _resolve(library)
    try:
        dll = ctypes.CDLL(path)
    except OSError as exc:
        hint = ""
        if sys.platform == "win32" and getattr(exc, "winerror", None) == 193:
            hint = (" TicketApiDll.dll is a 32-bit library: cisbridge must run on a 32-bit "
                    "(x86) Python to load it.")
        raise CisError(
            ErrorCode.AGENT_UNAVAILABLE,
            f"The NHS Ticket API library could not be loaded from {library} (set by "
            f"{CONFIG_KEY}): {exc}. Check that the NHS Identity Agent is installed and that "
            f"{CONFIG_KEY} names its TicketApiDll.dll, then run `cisbridge doctor`.{hint}",
            {"agent": "ticketapi", "library": library},
        ) from None
    return _Exports(dll, path)


class TicketApi:
    """One loaded, lazily initialised Ticket API instance; every call holds the lock.

    All methods block and must run off the event loop.
    """

    def __init__(self, library: str) -> None:
        self.library = library
        self._lock = threading.Lock()
        self._api: _Exports | None = None
        self._instance = 0
        self._finalized = False

    # -- lifecycle -------------------------------------------------------

    def _ensure(self) -> tuple[_Exports, int]:
        """(lock held) Load and Initialize once; a failure is retried next call."""
        if self._finalized:
            raise CisError(ErrorCode.AGENT_UNAVAILABLE,
                           "The host is shutting down; the NHS Identity Agent is no longer available.",
                           {"agent": "ticketapi"})
        if self._api is None:
            self._api = load_library(self.library)
        if not self._instance:
            instance = self._api.Initialize()
            if not instance:
                err = self._api.getLastError(0) & 0xFFFFFFFF
                # Whatever the reason given, no instance means no Identity Agent.
                raise self._error(err, 0, during="Initialize", force=ErrorCode.AGENT_UNAVAILABLE)
            self._instance = instance
            log.info("Ticket API initialised (%s)", self.library)
        return self._api, self._instance

    def finalize(self, timeout: float) -> bool:
        """Finalize the instance if it was initialised.  False if a call still runs.

        A call blocked in an Identity Agent dialog holds the lock; then the
        instance is left for process exit rather than finalised under it.
        """
        if not self._lock.acquire(timeout=timeout):
            log.warning("Ticket API still busy at exit; not finalising under a running call")
            self._finalized = True
            return False
        try:
            self._finalized = True
            if self._api is not None and self._instance:
                self._api.Finalize(self._instance)
                self._instance = 0
                log.info("Ticket API finalised")
            return True
        finally:
            self._lock.release()

    # -- calls -----------------------------------------------------------

    def _locked(self, call: str, fn: Callable[[], Any]) -> Any:
        with self._lock:
            try:
                return fn()
            except OSError as exc:
                # ctypes turns a crash inside the DLL (Windows SEH) into OSError.
                raise CisError(
                    ErrorCode.INTERNAL,
                    "The NHS Ticket API library failed inside the call. Restart the NHS "
                    "Identity Agent and try again; if it keeps happening, ask your IT team.",
                    {"agent": "ticketapi", "call": call, "error": str(exc)[:200]},
                ) from None

    def get_ticket(self) -> str:
        return self._locked("getTicket", lambda: self._read_ticket("getTicket"))

    def get_ticket_no_auth(self) -> str | None:
        return self._locked("getTicketNoAuth", lambda: self._read_ticket("getTicketNoAuth"))

    def get_new_ticket(self) -> str:
        return self._locked("getNewTicket", lambda: self._read_ticket("getNewTicket"))

    def destroy_ticket(self) -> None:
        def call() -> None:
            api, instance = self._ensure()
            rc = api.destroyTicket(instance) & 0xFFFFFFFF
            if rc != SUCCESS:
                raise self._error(rc, instance, during="destroyTicket")

        self._locked("destroyTicket", call)

    def version(self, component: int) -> int:
        def call() -> int:
            api, instance = self._ensure()
            version = api.GetGAVersion(instance, component)
            if not version:
                raise self._error(api.getLastError(instance) & 0xFFFFFFFF, instance,
                                  during="GetGAVersion")
            return version

        return self._locked("GetGAVersion", call)

    def _read_ticket(self, name: str) -> str | None:
        """(lock held) One of the three ticket calls, growing the buffer as needed.

        None only for getTicketNoAuth without a session.
        """
        api, instance = self._ensure()
        fn = getattr(api, name)
        size = INITIAL_BUFFER
        while True:
            buf = ctypes.create_string_buffer(size)
            used = ctypes.c_uint(0)
            rc = fn(instance, buf, size, ctypes.byref(used)) & 0xFFFFFFFF
            if rc == SUCCESS:
                raw = buf.raw
                end = raw.find(b"\0")
                if end < 0:
                    # Filled to the last byte with no terminator: truncated.
                    rc = BUFFER_TOO_SMALL
                else:
                    return self._decode_ticket(raw[:end], name)
            if rc == BUFFER_TOO_SMALL:
                needed = used.value
                # ``used`` may give the size needed (with or without the NUL), or
                # nothing at all ("on error the parameters are not changed").
                new_size = needed + 1 if needed >= size else size * 2
                log.debug("Ticket API %s: buffer of %d bytes too small, trying %d",
                          name, size, new_size)
                if new_size > MAX_BUFFER:
                    raise CisError(
                        ErrorCode.INTERNAL,
                        f"The NHS Identity Agent wants more than {MAX_BUFFER} bytes for a ticket, "
                        f"which no real ticket needs. Restart the Identity Agent and try again.",
                        {"agent": "ticketapi", "agentCode": agent_code(rc),
                         "agentError": "BUFFER_TOO_SMALL", "bufferSize": size,
                         "requested": needed},
                    )
                size = new_size
                continue
            if rc == TICKET_NOT_AVAILABLE and name == "getTicketNoAuth":
                return None
            raise self._error(rc, instance, during=name)

    @staticmethod
    def _decode_ticket(raw: bytes, name: str) -> str:
        # A ticket is an OpenSSO session id: printable ASCII.  Anything else is
        # not a ticket, and is not echoed (it might be one, mangled).
        if not raw or not all(0x21 <= b <= 0x7E for b in raw):
            raise CisError(
                ErrorCode.INTERNAL,
                "The NHS Identity Agent returned something that is not a ticket. "
                "Restart the Identity Agent and try again.",
                {"agent": "ticketapi", "call": name, "length": len(raw)},
            )
        log.debug("Ticket API %s: ticket of %d bytes", name, len(raw))
        return raw.decode("ascii")

    # -- errors ----------------------------------------------------------

    def describe(self, code: int, instance: int) -> str | None:
        """(lock held) The DLL's own words for ``code``, or None."""
        api = self._api
        if api is None:
            return None
        size = DESCRIPTION_BUFFER
        for _ in range(2):
            buf = ctypes.create_string_buffer(size)
            used = ctypes.c_uint(0)
            try:
                rc = api.getErrorDescription(instance, code, buf, size, ctypes.byref(used))
            except OSError:  # an access violation inside the DLL, on Windows
                return None
            rc &= 0xFFFFFFFF
            if rc == BUFFER_TOO_SMALL and size < 8 * DESCRIPTION_BUFFER:
                size = max(size * 2, min(used.value + 1, 8 * DESCRIPTION_BUFFER))
                continue
            if rc != SUCCESS:
                return None
            text = buf.value.decode("mbcs" if sys.platform == "win32" else "utf-8", "replace")
            text = " ".join(text.split())
            return text[:500] or None
        return None

    def _error(self, code: int, instance: int, *, during: str,
               force: ErrorCode | None = None) -> CisError:
        known = TCK_CODES.get(code)
        description = self.describe(code, instance) if code else None
        name = known.name if known else None
        if force is not None and (known is None or known.code is not force):
            error_code = force
            message = _IA_DOWN.format(what="it could not be initialised")
        elif known is not None:
            error_code, message = known.code, known.message
        else:
            error_code = ErrorCode.INTERNAL
            message = ("The NHS Identity Agent reported an unexpected error "
                       f"({agent_code(code)}). " + _TRY_AGAIN)
        if description:
            message = f"{message} (Identity Agent: {description})"
        detail: dict[str, Any] = {"agent": "ticketapi", "call": during}
        if code:  # Initialize may fail without a code; never invent one
            detail["agentCode"] = agent_code(code)
        if name:
            detail["agentError"] = name
        if description:
            detail["agentMessage"] = description
        log.info("Ticket API %s failed: %s %s", during, agent_code(code), name or "")
        return CisError(error_code, message, detail)


def library_from_config(config: Config) -> str:
    library = getattr(config.agent, "library", None)
    if library:
        return str(library)
    if sys.platform == "win32":
        return DEFAULT_LIBRARY
    raise CisError(
        ErrorCode.AGENT_UNAVAILABLE,
        f"The NHS Ticket API agent is configured but {CONFIG_KEY} is not set, and there is "
        f"no default outside Windows. Set {CONFIG_KEY} to the path of the Ticket API library, "
        f"or use [agent] kind = \"gas\".",
        {"agent": "ticketapi"},
    )


class _NoTurn(Exception):
    """The turn to call the library did not come within the wait given."""


class TicketApiAgent(Agent):
    kind = "ticketapi"

    def __init__(self, config: Config, host: AgentHost) -> None:
        super().__init__(config, host)
        self._api: TicketApi | None = None
        self._config_error: CisError | None = None
        self._turn: asyncio.Lock | None = None
        #: getTicket requests waiting for the turn, and whether a getTicket
        #: library call (which may prompt) is running, cancelled or not
        self._logins_waiting = 0
        self._login_running = False
        try:
            self._api = TicketApi(library_from_config(config))
        except CisError as exc:
            # Reported on use (and by doctor), not at start: the host still
            # serves getStatus, getCertificate and sign without an agent.
            self._config_error = exc

    def session_now(self):
        # The Identity Agent keeps the session; getStatus reports none (as session()).
        return NO_SESSION

    def _ticket_api(self) -> TicketApi:
        if self._api is None:
            assert self._config_error is not None
            raise self._config_error
        return self._api

    async def get_ticket(self, ctx: RequestContext) -> str:
        return await self._call(ctx, self._ticket_api().get_ticket, login=True)

    async def get_ticket_no_auth(self, ctx: RequestContext) -> str | None:
        api = self._ticket_api()
        if not (self._logins_waiting or self._login_running):
            return await self._call(ctx, api.get_ticket_no_auth)
        # A login is running or queued: the Identity Agent may be showing its
        # windows to a person (or to nobody).  Pages poll getTicketNoAuth; they
        # must not wait minutes for that, and until the login ends there is no
        # session: answer null (a page then calls getTicket, which queues
        # behind the login and gets its ticket without a second prompt).
        try:
            return await self._call(ctx, api.get_ticket_no_auth, wait=NO_AUTH_WAIT_DURING_LOGIN)
        except _NoTurn:
            log.info("getTicketNoAuth answered null: a login through the Identity Agent is in progress")
            return None

    async def _call(self, ctx: RequestContext, fn: Callable[[], Any], wait: float | None = None,
                    login: bool = False) -> Any:
        """Run one DLL call in a worker thread, one at a time.

        Requests queue here, on the event loop, rather than in worker threads
        blocked on TicketApi's lock: an Identity Agent dialog left open must not
        use up the threads the card needs.  The turn is held until the DLL call
        returns even if the request is cancelled meanwhile (the call itself
        cannot be interrupted).
        """
        if self._turn is None:
            self._turn = asyncio.Lock()
        self._logins_waiting += int(login)
        try:
            if wait is None:
                await self._turn.acquire()
            else:
                try:
                    await asyncio.wait_for(self._turn.acquire(), wait)
                except TimeoutError:
                    raise _NoTurn from None
        finally:
            self._logins_waiting -= int(login)
        self._login_running = login
        try:
            call = asyncio.ensure_future(ctx.run_blocking(fn))
        except BaseException:
            self._login_running = False
            self._turn.release()
            raise
        call.add_done_callback(self._end_turn)
        return await asyncio.shield(call)

    def _end_turn(self, call: asyncio.Future) -> None:
        assert self._turn is not None
        self._login_running = False
        self._turn.release()
        if not call.cancelled():
            call.exception()  # retrieved here when the request was cancelled

    async def close(self) -> None:
        api = self._api
        if api is None:
            return
        try:
            await asyncio.wait_for(self.host.run_blocking(api.finalize, 0.4), 0.5)
        except Exception:  # exiting: never let cleanup stop the host from ending
            log.warning("Ticket API could not be finalised at exit", exc_info=True)


def probe(library_path: str) -> str:
    """For ``cisbridge doctor``: load, Initialize, read the versions, Finalize.

    Returns one line for people; raises CisError saying what is wrong.
    """
    api = TicketApi(library_path)
    try:
        api_version = api.version(VERSION_API)
        try:
            engine = f"engine version {_format_version(api.version(VERSION_ENGINE))}"
        except CisError as exc:
            engine = f"engine not answering ({exc.message})"
    finally:
        api.finalize(timeout=5.0)
    return (f"NHS Ticket API loaded from {library_path}: API version "
            f"{_format_version(api_version)}, {engine}")


def _format_version(version: int) -> str:
    # The DWORD's layout is not documented; show it whole.
    return f"0x{version & 0xFFFFFFFF:08X}"
