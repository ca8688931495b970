"""The GAS/SSB simulator: a real HTTP(S) server speaking SPINE.md §3–5.

Endpoints (as the NHS Spine's, as far as they are publicly known):

- ``POST /login/authactivate`` (gpOBJECT, service=ACTIVATION) → challenge
- ``POST /login/authvalidate`` (gpOBJECT, service=AUTHENTICATION) → cn, roles, sso_ticket
- ``GET  /saml/RoleSelectionGP.jsp?token=…&selectedRoleUid=…`` → ``OK``
- ``POST /login/authlogout`` (gpOBJECT, service=LOGOUT)
- ``GET  /saml/RoleAssertion?token=…`` → SAML 1.1 samlp:Response
- ``POST /amserver/sessionservice`` (OpenSSO RequestSet, GetSession)

and, for tests and demos only, answered to loopback clients only:

- ``POST /_sim/fault`` ``{"fault": "none"|"down"|"slow"|"http500"|"malformed"|"expired"|"untrusted",
  "delay": seconds, "paths": [...], "times": n}``; ``GET /_sim/fault``
- ``GET /_sim/log[?event=logout]`` → ``{"events": [...]}``; ``POST /_sim/reset``

Where the real servers' behaviour is not public (error bodies, status codes)
the simulator's choices are documented in docs/simulator.md.
"""

from __future__ import annotations

import base64
import hashlib
import hmac
import json
import logging
import re
import secrets
import socket
import ssl
import struct
import tempfile
import threading
import time
from collections import deque
from dataclasses import dataclass, field
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path
from typing import Callable
from urllib.parse import parse_qs, urlsplit

from cisbridge.origins import is_loopback
from cisbridge.sim import documents
from cisbridge.sim.users import Role, User, load_users
from cisbridge.spine import gpobject, sessionservice
from cisbridge.spine.gpobject import GpObjectError, Param

log = logging.getLogger("cisbridge.sim")

FAULTS = ("none", "down", "slow", "http500", "malformed", "expired", "untrusted")
GAS_VERSION = "cisbridge-sim 0.1 (not NHS)"
LATEST_GAC_VERSION = "8.0.0.0"
#: where an OpenSSO session id ends: "@" + base64 of its site id, then "#"
TICKET_SITE_SUFFIX = "@AAJTSQACMDE=#"
MAX_BODY = 64 * 1024
MAX_EVENTS = 2000
MAX_SESSIONS = 100_000


def ticket_ref(ticket: str) -> str:
    """A short, non-reversible reference to a ticket for logs and the event list."""
    return hashlib.sha256(ticket.encode("utf-8", "replace")).hexdigest()[:16]


def new_ticket() -> str:
    """An OpenSSO-shaped session id that always holds each of ``+ / = @ #``.

    Every ticket carries the characters that break an un-encoded URL, so a
    client that forgets to URL-encode fails on the first try, not sometimes.
    """
    while True:
        body = base64.b64encode(secrets.token_bytes(32)).decode("ascii")  # ends "="
        if "+" in body and "/" in body:
            return "AQIC5wM2LY4S" + body + TICKET_SITE_SUFFIX


@dataclass
class Fault:
    kind: str = "none"
    delay: float = 0.0
    paths: tuple[str, ...] = ()  # empty: every Spine endpoint
    times: int | None = None  # None: until changed

    def to_json(self) -> dict:
        return {"fault": self.kind, "delay": self.delay, "paths": list(self.paths),
                "times": self.times}

    @classmethod
    def from_json(cls, data: object) -> "Fault":
        if not isinstance(data, dict):
            raise ValueError("expected a JSON object")
        unknown = set(data) - {"fault", "delay", "paths", "times"}
        if unknown:
            raise ValueError(f"unknown fields: {sorted(unknown)}")
        kind = data.get("fault")
        if kind not in FAULTS:
            raise ValueError(f"fault must be one of {', '.join(FAULTS)}")
        delay = data.get("delay", 30.0 if kind == "slow" else 0.0)
        if not isinstance(delay, (int, float)) or isinstance(delay, bool) or not 0 <= delay <= 3600:
            raise ValueError("delay must be a number of seconds between 0 and 3600")
        paths = data.get("paths") or []
        if not isinstance(paths, list) or not all(isinstance(p, str) and p.startswith("/")
                                                  for p in paths):
            raise ValueError("paths must be a list of paths such as /login/authvalidate")
        times = data.get("times")
        if times is not None and (not isinstance(times, int) or isinstance(times, bool)
                                  or times < 1):
            raise ValueError("times must be a positive integer")
        return cls(kind, float(delay), tuple(paths), times)


@dataclass
class SimSession:
    ticket: str
    user: User
    created: float
    last_used: float
    log_session_id: str = ""
    device_id: str = ""
    role: Role | None = None
    ssb_mode: int = 0


@dataclass
class Reply:
    status: int
    body: bytes = b""
    content_type: str = "text/plain; charset=utf-8"
    headers: dict[str, str] = field(default_factory=dict)


class Refused(Exception):
    """A request the simulator answers with an error status."""

    def __init__(self, status: int, code: str, text: str):
        super().__init__(text)
        self.status, self.code, self.text = status, code, text


class SimState:
    """Sessions, pending challenges, the fault in force and the event log."""

    def __init__(self, users: dict[str, User], ca, *, idle_time: float, max_time: float,
                 challenge_time: float):
        self.users = users
        self.ca = ca
        self.idle_time = idle_time
        self.max_time = max_time
        self.challenge_time = challenge_time
        self.secret = secrets.token_bytes(32)
        self.lock = threading.Lock()
        self.sessions: dict[str, SimSession] = {}
        self.ended: dict[str, str] = {}  # ticket -> why ("expired", "logout"), bounded
        self.challenges: dict[str, float] = {}  # challenge b64 -> deadline
        self.fault = Fault()
        self.events: deque[dict] = deque(maxlen=MAX_EVENTS)

    # -- events
    def record(self, event: str, **data: object) -> None:
        entry = {"time": time.time(), "event": event, **data}
        with self.lock:
            self.events.append(entry)
        log.info("%s %s", event, " ".join(f"{k}={v}" for k, v in data.items()))

    # -- faults
    def take_fault(self, path: str) -> Fault | None:
        """The fault applying to a request for ``path`` (counting it against ``times``)."""
        with self.lock:
            f = self.fault
            if f.kind == "none" or (f.paths and path not in f.paths):
                return None
            if f.times is not None:
                f.times -= 1
                if f.times <= 0:
                    self.fault = Fault()
            return f

    def fault_is(self, kind: str, path: str) -> bool:
        f = self.fault
        return f.kind == kind and (not f.paths or path in f.paths)

    # -- challenges
    def new_challenge(self) -> tuple[str, str]:
        challenge = base64.b64encode(secrets.token_bytes(32)).decode("ascii")
        now = time.monotonic()
        with self.lock:
            for c in [c for c, deadline in self.challenges.items() if deadline < now]:
                del self.challenges[c]
            if len(self.challenges) > 10000:
                raise Refused(503, "BUSY", "too many logins in progress; try again shortly")
            self.challenges[challenge] = now + self.challenge_time
        return challenge, self._sign(challenge)

    def take_challenge(self, challenge: str, signature: str) -> None:
        """Consume a challenge: each may be answered once, within its time."""
        with self.lock:
            deadline = self.challenges.pop(challenge, None)
        if deadline is None or not hmac.compare_digest(signature, self._sign(challenge)):
            raise Refused(403, "CHALLENGE_UNKNOWN",
                          "the challenge is unknown or was already used; start the login again")
        if deadline < time.monotonic():
            raise Refused(403, "CHALLENGE_EXPIRED", "the challenge has expired; start the login again")

    def _sign(self, challenge: str) -> str:
        return base64.b64encode(hmac.new(self.secret, challenge.encode(), "sha256").digest()).decode()

    # -- sessions
    def open_session(self, user: User, log_session_id: str, device_id: str) -> SimSession:
        now = time.monotonic()
        session = SimSession(new_ticket(), user, now, now, log_session_id, device_id,
                             ssb_mode=1 if user.training else 0)
        with self.lock:
            if len(self.sessions) >= 1000:  # forget abandoned sessions now and then
                for old in [s for s in self.sessions.values()
                            if now - s.created >= self.max_time or now - s.last_used >= self.idle_time]:
                    self._end(old.ticket, "expired")
            if len(self.sessions) >= MAX_SESSIONS:
                raise Refused(503, "BUSY", "too many sessions are open; try again later")
            self.sessions[session.ticket] = session
        return session

    def session(self, ticket: str, path: str, *, touch: bool = True) -> SimSession:
        """The live session of ``ticket``; ends it (and refuses) when it has expired."""
        now = time.monotonic()
        with self.lock:
            session = self.sessions.get(ticket)
            if session is None:
                why = self.ended.get(ticket)
                if why == "expired":
                    raise Refused(401, "SESSION_EXPIRED", "Session has timed out.")
                raise Refused(401, "SESSION_INVALID", "Invalid session ID.")
            reason = None
            if self.fault_is("expired", path):
                reason = "fault"
            elif now - session.created >= self.max_time:
                reason = "max"
            elif now - session.last_used >= self.idle_time:
                reason = "idle"
            if reason is None:
                if touch:
                    session.last_used = now
                return session
            self._end(session.ticket, "expired")
        self.record("expired", uid=session.user.uuid, ticket=ticket_ref(ticket), reason=reason)
        raise Refused(401, "SESSION_EXPIRED", "Session has timed out.")

    def end_session(self, ticket: str, why: str) -> SimSession | None:
        with self.lock:
            session = self.sessions.get(ticket)
            if session is not None:
                self._end(ticket, why)
            return session

    def _end(self, ticket: str, why: str) -> None:
        self.sessions.pop(ticket, None)
        self.ended[ticket] = why
        while len(self.ended) > 10000:
            self.ended.pop(next(iter(self.ended)))

    def reset(self) -> None:
        with self.lock:
            self.sessions.clear()
            self.ended.clear()
            self.challenges.clear()
            self.events.clear()
            self.fault = Fault()


# ---------------------------------------------------------------------------
# Request handling


def _gp_error(status: int, code: str, text: str) -> Reply:
    body = gpobject.encode([Param("error_code", code), Param("error_text", text)])
    return Reply(status, body, gpobject.CONTENT_TYPE)


_HOST_HEADER = re.compile(r"[A-Za-z0-9.\-]{1,253}(:[0-9]{1,5})?|\[[0-9A-Fa-f:.]{2,45}\](:[0-9]{1,5})?")


class Handler(BaseHTTPRequestHandler):
    server: "_Server"
    protocol_version = "HTTP/1.1"
    server_version = "cisbridge-sim"
    sys_version = ""
    timeout = 15  # a silent client cannot hold a thread for long
    # Buffered: headers and body leave in one write (flushed after each request),
    # so Nagle and delayed ACKs do not add 40 ms to every TLS answer.
    wbufsize = 64 * 1024

    def setup(self) -> None:
        try:
            self.request.setsockopt(socket.IPPROTO_TCP, socket.TCP_NODELAY, 1)
        except OSError:
            pass
        super().setup()
        if isinstance(self.connection, ssl.SSLSocket):
            self.connection.do_handshake()  # here, in the worker thread, not in accept()

    # -- plumbing
    def do_GET(self) -> None:
        self._serve("GET")

    def do_POST(self) -> None:
        self._serve("POST")

    def do_PUT(self) -> None:
        self._serve("PUT")

    def do_DELETE(self) -> None:
        self._serve("DELETE")

    def do_HEAD(self) -> None:
        self._serve("HEAD")

    def _serve(self, method: str) -> None:
        sim = self.server.sim
        self._body_read = False
        url = urlsplit(self.path)
        path = url.path
        try:
            if path.startswith("/_sim/"):
                reply = self._admin(method, path, url.query)
            else:
                fault = sim.state.take_fault(path) if path in ROUTES else None
                if fault is not None and fault.kind == "down":
                    self._drop()
                    return
                if fault is not None and fault.kind == "slow":
                    if sim.stopping.wait(fault.delay):
                        self._drop()
                        return
                if fault is not None and fault.kind == "http500":
                    reply = Reply(500, b"<html><body>500 Internal Server Error</body></html>",
                                  "text/html")
                elif fault is not None and fault.kind == "malformed":
                    reply = Reply(200, b'<?xml version="1.0"?><gpOBJECT><gpPARAM name="chal',
                                  gpobject.CONTENT_TYPE)
                else:
                    reply = self._route(method, path, url.query)
        except Refused as exc:
            reply = Reply(exc.status, exc.text.encode())
        except Exception:  # never crash on a request; say so and go on
            log.exception("internal error serving %s %s", method, path)
            reply = Reply(500, b"the simulator failed on this request (see its log)")
        self._send(reply, head=(method == "HEAD"))

    def _route(self, method: str, path: str, query: str) -> Reply:
        routes = ROUTES.get(path)
        if routes is None:
            return Reply(404, b"no such endpoint")
        handler = routes.get(method)
        if handler is None:
            return Reply(405, b"method not allowed", headers={"Allow": ", ".join(routes)})
        return handler(self, query)

    def _send(self, reply: Reply, head: bool = False) -> None:
        if not self._body_read and (self.headers.get("Content-Length", "0") != "0"
                                    or self.headers.get("Transfer-Encoding")):
            # An unread body would be taken for the next request: end the connection.
            self.close_connection = True
        self.send_response(reply.status)
        self.send_header("Content-Type", reply.content_type)
        self.send_header("Content-Length", str(len(reply.body)))
        self.send_header("Cache-Control", "no-store")
        for k, v in reply.headers.items():
            self.send_header(k, v)
        if self.close_connection:
            self.send_header("Connection", "close")
        self.end_headers()
        if not head:
            self.wfile.write(reply.body)

    def _drop(self) -> None:
        """Hang up without answering, as a dead server's proxy would."""
        self.close_connection = True
        try:
            # linger 0: close with a reset, like a crashed server
            self.connection.setsockopt(socket.SOL_SOCKET, socket.SO_LINGER, struct.pack("ii", 1, 0))
        except OSError:
            pass

    def body(self) -> bytes:
        length = self.headers.get("Content-Length")
        if self.headers.get("Transfer-Encoding"):
            self.close_connection = True
            raise Refused(411, "BAD_REQUEST", "send the body with a Content-Length")
        if length is None:
            raise Refused(411, "BAD_REQUEST", "a Content-Length is required")
        try:
            n = int(length)
        except ValueError:
            raise Refused(400, "BAD_REQUEST", "the Content-Length is not a number") from None
        if n < 0:
            raise Refused(400, "BAD_REQUEST", "the Content-Length is negative")
        if n > MAX_BODY:
            self.close_connection = True
            raise Refused(413, "TOO_LARGE", f"the body is over {MAX_BODY} bytes")
        data = self.rfile.read(n)
        self._body_read = True
        if len(data) != n:
            self.close_connection = True
            raise Refused(400, "BAD_REQUEST", "the body is shorter than its Content-Length")
        return data

    def gp_request(self, service: str) -> gpobject.GpObject:
        try:
            obj = gpobject.decode(self.body())
        except GpObjectError as exc:
            raise Refused(400, "BAD_REQUEST", str(exc)) from None
        if obj.get("service") != service:
            raise Refused(400, "BAD_REQUEST", f"the service parameter must be {service}")
        return obj

    def query(self, query: str, required: tuple[str, ...]) -> dict[str, str]:
        try:
            parsed = parse_qs(query, keep_blank_values=True, strict_parsing=bool(query),
                              max_num_fields=20)
        except ValueError:
            raise Refused(400, "BAD_REQUEST", "the query string is malformed") from None
        if any(len(v) > 1 for v in parsed.values()):
            raise Refused(400, "BAD_REQUEST", "a query parameter is repeated")
        values = {k: v[0] for k, v in parsed.items()}
        missing = [k for k in required if not values.get(k)]
        if missing:
            raise Refused(400, "BAD_REQUEST", f"missing query parameter(s): {', '.join(missing)}")
        return values

    def base_url(self) -> str:
        host = self.headers.get("Host", "")
        if not _HOST_HEADER.fullmatch(host):
            return self.server.sim.url
        return f"{self.server.sim.scheme}://{host}"

    def log_message(self, format: str, *args: object) -> None:
        # The request line holds tickets in its query: log the path only.
        log.debug("%s %s -> %s", self.client_address[0], urlsplit(self.path).path,
                  args[1] if len(args) > 1 else "")

    # -- the admin endpoints (tests and demos)
    def _admin(self, method: str, path: str, query: str) -> Reply:
        if not is_loopback(self.client_address[0]):
            return Reply(403, b"the simulator's admin endpoints answer loopback clients only")
        state = self.server.sim.state
        if path == "/_sim/fault" and method == "GET":
            return _json(200, state.fault.to_json())
        if path == "/_sim/fault" and method == "POST":
            try:
                fault = Fault.from_json(json.loads(self.body() or b"null"))
            except ValueError as exc:
                return _json(400, {"error": str(exc)})
            with state.lock:
                state.fault = fault
            log.warning("fault set: %s", fault.to_json())
            return _json(200, fault.to_json())
        if path == "/_sim/log" and method == "GET":
            wanted = self.query(query, ()).get("event")
            with state.lock:
                events = [e for e in state.events if wanted is None or e["event"] == wanted]
            return _json(200, {"events": events})
        if path == "/_sim/reset" and method == "POST":
            self.body()
            state.reset()
            return _json(200, {})
        return Reply(404, b"no such admin endpoint")

    # -- GAS
    def authactivate(self, _query: str) -> Reply:
        try:
            obj = self.gp_request("ACTIVATION")
        except Refused as exc:
            return _gp_error(exc.status, exc.code, exc.text)
        state = self.server.sim.state
        if obj.get("auth_method", "3") != "3":
            return _gp_error(400, "BAD_REQUEST", "only auth_method 3 (smartcard) is supported")
        try:
            challenge, signature = state.new_challenge()
        except Refused as exc:
            return _gp_error(exc.status, exc.code, exc.text)
        base = self.base_url()
        state.record("activate", logSessionId=_short(obj.get("log_session_id", "")),
                     deviceId=_short(obj.get("device_id", "")), appUrl=_short(obj.get("app_url", "")),
                     userAgent=_short(self.headers.get("User-Agent", "")))
        return Reply(200, gpobject.encode([
            Param("challenge", challenge, {"encoding": "base64"}),
            Param("signature", signature),
            Param("reply_url", f"{base}/login/authvalidate"),
            Param("error_url", f"{base}/login/autherror"),
            Param("gas_version", GAS_VERSION),
            Param("latest_gac_version", LATEST_GAC_VERSION),
        ]), gpobject.CONTENT_TYPE)

    def authvalidate(self, _query: str) -> Reply:
        sim = self.server.sim
        try:
            obj = self.gp_request("AUTHENTICATION")
            user, cert_uid = self._authenticate(obj)
        except Refused as exc:
            sim.state.record("loginFailed", code=exc.code, reason=exc.text)
            return _gp_error(exc.status, exc.code, exc.text)
        try:
            session = sim.state.open_session(user, obj.get("log_session_id", ""),
                                             obj.get("device_id", ""))
        except Refused as exc:
            return _gp_error(exc.status, exc.code, exc.text)
        sim.state.record("login", uid=user.uuid, ticket=ticket_ref(session.ticket),
                         roles=len(user.roles), cardType=_short(obj.get("card_type", "")),
                         mobility=_short(obj.get("mobility", "")))
        base = self.base_url()
        params = [Param("cn", user.name)]
        for n, role in enumerate(user.roles, start=1):
            params.append(Param(f"nhsjobrole{n}", role.gas_text,
                                {"id": role.id, "orgcode": role.org_code}))
        params += [
            Param("sso_ticket", session.ticket),
            Param("sso_domain", sim.sso_domain),
            Param("sso_session_url", f"{base}{sessionservice.PATH}"),
            Param("sso_max_session_time", str(int(sim.state.max_time))),
            Param("sso_session_time", str(int(sim.state.idle_time))),
            Param("sso_keep_alive", str(max(1, int(sim.state.idle_time // 2)))),
            Param("sso_logout_url", f"{base}/login/authlogout"),
        ]
        return Reply(200, gpobject.encode(params), gpobject.CONTENT_TYPE)

    def _authenticate(self, obj: gpobject.GpObject) -> tuple[User, str]:
        from cisbridge.spine.cms import CmsError, verify_signed_data
        from cisbridge.testca import TestCAError

        state = self.server.sim.state
        try:
            challenge = obj.require("challenge")
            signature = obj.require("signature")
            uid = obj.require("uid")
            response = obj.param("response")
            if response is None or not response.value:
                raise GpObjectError("the gpOBJECT has no 'response' parameter")
            challenge_bytes = gpobject.decode_base64(challenge, "challenge")
            cms_der = gpobject.decode_base64(response.value, "response")
        except GpObjectError as exc:
            raise Refused(400, "BAD_REQUEST", str(exc)) from None
        state.take_challenge(challenge, signature)
        try:
            cert = verify_signed_data(cms_der, challenge_bytes)
        except CmsError as exc:
            raise Refused(403, "SIGNATURE_INVALID", f"the challenge signature is not valid: {exc}") from None
        if state.fault_is("untrusted", "/login/authvalidate"):
            raise Refused(403, "CARD_NOT_TRUSTED", "the card's certificate is not trusted (fault injected)")
        try:
            state.ca.verify_issued(cert)
        except TestCAError as exc:
            raise Refused(403, "CARD_NOT_TRUSTED", f"the card's certificate is not trusted: {exc}") from None
        cn = _common_name(cert)
        if cn != uid:
            raise Refused(403, "UID_MISMATCH", "the uid does not match the card certificate")
        if not _can_sign(cert):
            raise Refused(403, "CARD_NOT_TRUSTED", "the card certificate is not for digital signature")
        user = state.users.get(uid)
        if user is None:
            raise Refused(403, "USER_UNKNOWN",
                          f"no user is registered for the card holder {uid} on this simulator")
        return user, cn

    def authlogout(self, _query: str) -> Reply:
        state = self.server.sim.state
        try:
            obj = self.gp_request("LOGOUT")
            ticket = obj.require("sso_ticket")
        except Refused as exc:
            return _gp_error(exc.status, exc.code, exc.text)
        except GpObjectError as exc:
            return _gp_error(400, "BAD_REQUEST", str(exc))
        uid = obj.get("uid")
        with state.lock:
            live = state.sessions.get(ticket)
        if live is not None and uid and uid != live.user.uuid:
            return _gp_error(403, "UID_MISMATCH", "the uid does not match the session")
        session = state.end_session(ticket, "logout")
        state.record("logout", uid=session.user.uuid if session else uid, ticket=ticket_ref(ticket),
                     known=session is not None, logSessionId=_short(obj.get("log_session_id", "")),
                     deviceId=_short(obj.get("device_id", "")))
        return Reply(200, gpobject.encode([Param("service", "LOGOUT"), Param("status", "OK")]),
                     gpobject.CONTENT_TYPE)

    # -- SSB
    def role_selection(self, query: str) -> Reply:
        state = self.server.sim.state
        try:
            q = self.query(query, ("token", "selectedRoleUid"))
            session = state.session(q["token"], "/saml/RoleSelectionGP.jsp")
        except Refused as exc:
            return Reply(exc.status, f"FAILED: {exc.text}".encode())
        role = session.user.role(q["selectedRoleUid"])
        if role is None:
            return Reply(403, b"FAILED: that role is not one of the user's roles")
        mode = q.get("ssbMode", "0")
        if mode not in ("0", "1"):
            return Reply(400, b"FAILED: ssbMode must be 0 or 1")
        with state.lock:
            session.role = role
            session.ssb_mode = 1 if session.user.training or mode == "1" else 0
        state.record("roleSelected", uid=session.user.uuid, ticket=ticket_ref(session.ticket),
                     role=role.id, ssbMode=session.ssb_mode, fallbackStatus=_short(q.get("fallbackStatus", "")),
                     gacVersion=_short(q.get("gacVersion", "")))
        return Reply(200, b"<html><body>OK</body></html>", "text/html; charset=utf-8")

    def role_assertion(self, query: str) -> Reply:
        state = self.server.sim.state
        try:
            q = self.query(query, ("token",))
            session = state.session(q["token"], "/saml/RoleAssertion")
        except Refused as exc:
            return Reply(200, documents.role_assertion_refused("samlp:Requester", exc.text),
                         "text/xml; charset=utf-8")
        if session.role is None:
            return Reply(200, documents.role_assertion_refused(
                "samlp:Requester", "No role has been selected for this session."),
                "text/xml; charset=utf-8")
        state.record("roleAssertion", uid=session.user.uuid, ticket=ticket_ref(session.ticket))
        return Reply(200, documents.role_assertion(session.user, session.role, session.ssb_mode,
                                                   self.base_url()), "text/xml; charset=utf-8")

    def session_service(self, _query: str) -> Reply:
        state = self.server.sim.state
        try:
            ops = sessionservice.parse_request(self.body())
        except sessionservice.SessionServiceError as exc:
            return Reply(400, str(exc).encode())
        if len(ops) > 10:
            return Reply(400, b"too many requests in one RequestSet")
        results = []
        now = time.monotonic()
        for op, sid, reset in ops:
            if op != "GetSession":
                results.append(documents.get_session_exception("Unsupported request.", "Unknown"))
                continue
            try:
                session = state.session(sid, sessionservice.PATH, touch=reset)
            except Refused as exc:
                results.append(documents.get_session_exception(exc.text))
                continue
            state.record("getSession", uid=session.user.uuid, ticket=ticket_ref(sid))
            results.append(documents.get_session_valid(
                sid, session.user, session.role, max_time=state.max_time,
                idle_time=state.idle_time,
                time_left=max(0.0, state.max_time - (now - session.created)),
                time_idle=max(0.0, now - session.last_used)))
        return Reply(200, documents.session_response(results), sessionservice.CONTENT_TYPE)


ROUTES: dict[str, dict[str, Callable[[Handler, str], Reply]]] = {
    "/login/authactivate": {"POST": Handler.authactivate},
    "/login/authvalidate": {"POST": Handler.authvalidate},
    "/login/authlogout": {"POST": Handler.authlogout},
    "/saml/RoleSelectionGP.jsp": {"GET": Handler.role_selection},
    "/saml/RoleAssertion": {"GET": Handler.role_assertion},
    sessionservice.PATH: {"POST": Handler.session_service},
}


def _json(status: int, data: object) -> Reply:
    return Reply(status, json.dumps(data).encode(), "application/json")


def _short(text: str) -> str:
    """Client-sent text fit for the event log: short, printable, one line."""
    return "".join(c if c.isprintable() else "?" for c in text[:64])


def _common_name(cert) -> str | None:
    from cryptography.x509.oid import NameOID

    names = cert.subject.get_attributes_for_oid(NameOID.COMMON_NAME)
    return names[0].value if len(names) == 1 else None


def _can_sign(cert) -> bool:
    from cryptography import x509

    try:
        return cert.extensions.get_extension_for_class(x509.KeyUsage).value.digital_signature
    except x509.ExtensionNotFound:
        return True  # no KeyUsage: unrestricted


# ---------------------------------------------------------------------------
# The server


class _Server(ThreadingHTTPServer):
    daemon_threads = True
    request_queue_size = 64
    sim: "Simulator"

    def handle_error(self, request, client_address) -> None:
        # A client that hangs up, sends junk instead of TLS, or times out is
        # not the simulator's problem: one line, no traceback.
        import sys

        exc = sys.exc_info()[1]
        log.info("connection from %s ended: %s", client_address[0], exc.__class__.__name__)


class _Server6(_Server):
    address_family = socket.AF_INET6


class SimulatorError(Exception):
    """The simulator cannot start as asked; the message says why."""


class Simulator:
    """A GAS/SSB simulator serving in a background thread.

    >>> with Simulator(tls=True) as sim:
    ...     sim.url, sim.ca_file   # give these to the client
    """

    def __init__(
        self,
        *,
        host: str = "127.0.0.1",
        port: int = 0,
        tls: bool = False,
        ca=None,
        ca_dir: Path | None = None,
        users: dict[str, User] | Path | str | None = None,
        idle_time: float = 7200.0,
        max_time: float = 43200.0,
        challenge_time: float = 120.0,
        sso_domain: str = ".cisbridge.test",
        fault: Fault | None = None,
    ) -> None:
        if not tls and not is_loopback(host):
            raise SimulatorError(f"plain HTTP is allowed on loopback only; use --tls to serve on {host}")
        if idle_time <= 0 or max_time <= 0:
            raise SimulatorError("session times must be positive")
        if ca is None:
            from cisbridge import testca

            ca = testca.load_or_create(ca_dir)
        if not isinstance(users, dict):
            users = load_users(users)
        self.host, self.tls, self.sso_domain = host, tls, sso_domain
        self.state = SimState(users, ca, idle_time=idle_time, max_time=max_time,
                              challenge_time=challenge_time)
        if fault is not None:
            self.state.fault = fault
        self.stopping = threading.Event()
        self._requested_port = port
        self._httpd: _Server | None = None
        self._thread: threading.Thread | None = None
        self._tmp: tempfile.TemporaryDirectory | None = None

    @property
    def scheme(self) -> str:
        return "https" if self.tls else "http"

    @property
    def port(self) -> int:
        if self._httpd is None:
            raise SimulatorError("the simulator is not running")
        return self._httpd.server_address[1]

    @property
    def url(self) -> str:
        """Base URL; with TLS its host is one the server certificate names."""
        host = self.host
        if host in ("0.0.0.0", "::", ""):
            host = "localhost"
        elif ":" in host:
            host = f"[{host}]"
        return f"{self.scheme}://{host}:{self.port}"

    @property
    def ca_file(self) -> Path | None:
        """The CA certificate a client must trust (None without TLS)."""
        return self.state.ca.cert_path if self.tls else None

    def start(self) -> "Simulator":
        cls = _Server6 if ":" in self.host else _Server
        try:
            httpd = cls((self.host, self._requested_port), Handler)
        except OSError as exc:
            raise SimulatorError(f"cannot listen on {self.host}:{self._requested_port}: "
                                 f"{exc.strerror or exc}") from None
        httpd.sim = self
        if self.tls:
            try:
                httpd.socket = self._tls_context().wrap_socket(
                    httpd.socket, server_side=True, do_handshake_on_connect=False)
            except Exception:
                httpd.server_close()
                raise
        self._httpd = httpd
        self._thread = threading.Thread(target=httpd.serve_forever, kwargs={"poll_interval": 0.1},
                                        name="cisbridge-sim", daemon=True)
        self._thread.start()
        log.info("listening on %s", self.url)
        return self

    def serve_forever(self) -> None:
        """Serve in the calling thread until :meth:`stop` (from a signal handler, say)."""
        if self._httpd is None:
            self.start()
        assert self._thread is not None
        while self._thread.is_alive():
            self._thread.join(0.2)

    def stop(self) -> None:
        self.stopping.set()
        if self._httpd is not None:
            self._httpd.shutdown()
            self._httpd.server_close()
        if self._thread is not None:
            self._thread.join(5)
        if self._tmp is not None:
            self._tmp.cleanup()
            self._tmp = None

    def __enter__(self) -> "Simulator":
        return self.start()

    def __exit__(self, *exc: object) -> None:
        self.stop()

    # -- conveniences for tests in the same process
    def set_fault(self, kind: str, *, delay: float | None = None, paths: list[str] | None = None,
                  times: int | None = None) -> None:
        data: dict = {"fault": kind, "paths": paths or []}
        if delay is not None:
            data["delay"] = delay
        if times is not None:
            data["times"] = times
        fault = Fault.from_json(data)
        with self.state.lock:
            self.state.fault = fault

    def events(self, event: str | None = None) -> list[dict]:
        with self.state.lock:
            return [dict(e) for e in self.state.events if event is None or e["event"] == event]

    def _tls_context(self) -> ssl.SSLContext:
        from cryptography.hazmat.primitives import serialization
        from cryptography.hazmat.primitives.asymmetric import rsa

        key = rsa.generate_private_key(public_exponent=65537, key_size=2048)
        names = ["localhost", "127.0.0.1", "::1"]
        if self.host not in names and self.host not in ("0.0.0.0", "::", ""):
            names.insert(0, self.host)
        if self.host in ("0.0.0.0", "::"):
            names.append(socket.gethostname())
        cert = self.state.ca.issue_server_certificate(key.public_key(), names)
        self._tmp = tempfile.TemporaryDirectory(prefix="cisbridge-sim-")
        cert_file = Path(self._tmp.name) / "server.pem"
        key_file = Path(self._tmp.name) / "server.key"
        cert_file.write_bytes(cert.public_bytes(serialization.Encoding.PEM)
                              + self.state.ca.certificate.public_bytes(serialization.Encoding.PEM))
        key_file.touch(mode=0o600)
        key_file.write_bytes(key.private_bytes(serialization.Encoding.PEM,
                                               serialization.PrivateFormat.PKCS8,
                                               serialization.NoEncryption()))
        context = ssl.SSLContext(ssl.PROTOCOL_TLS_SERVER)
        context.minimum_version = ssl.TLSVersion.TLSv1_2
        context.load_cert_chain(cert_file, key_file)
        return context
