"""``[agent] kind = "gas"``: the built-in GAS agent.

Logs the card in at GAS the way the NHS Identity Agent does (SPINE.md §3):
authactivate → sign the challenge on the card (CKM_SHA1_RSA_PKCS, CMS
SignedData with the card certificate) → authvalidate → pick a role →
RoleSelectionGP.jsp.  The session it gets is kept in memory with GAS's idle and
maximum timers; ``getTicketNoAuth`` answers from it without any network call.
Card removal, expiry or host exit end it (logout at GAS, ``sessionEnded``).

TLS is always verified: against ``[agent] ca_file`` when set, else the system's
trust store.  Plain http is accepted only on loopback (the simulator in tests);
the config validation refuses anything else.
"""

from __future__ import annotations

import asyncio
import logging
import secrets
import string
import time
from dataclasses import dataclass
from urllib.parse import quote, urlsplit

from cisbridge import __version__
from cisbridge.agents.base import Agent
from cisbridge.protocol import CisError, ErrorCode, Role, RolePromptData, Session, SessionEndedData

log = logging.getLogger("cisbridge.agent.gas")

USER_AGENT = f"Mozilla/4.0(compatible;IE;cisbridge/{__version__})"
CONTENT_TYPE = "text/xml; charset=UTF-8"
MAX_RESPONSE = 256 * 1024


@dataclass
class _Live:
    ticket: str
    uid: str
    name: str
    role: Role
    idle_seconds: float
    max_seconds: float
    started: float
    last_used: float
    logout_url: str
    log_session_id: str
    device_id: str

    def expiry(self) -> tuple[float, str]:
        idle_end = self.last_used + self.idle_seconds
        max_end = self.started + self.max_seconds
        return (idle_end, "idleTimeout") if idle_end < max_end else (max_end, "maxTimeout")


class GasAgent(Agent):
    kind = "gas"

    def __init__(self, config, host) -> None:
        super().__init__(config, host)
        self._live: _Live | None = None
        self._lock: asyncio.Lock | None = None
        self._timer: asyncio.TimerHandle | None = None
        self._ssl = None

    # ----------------------------------------------------------- interface

    def get_ticket_no_auth(self, ctx) -> str | None:
        live = self._current()
        if live is None:
            return None
        live.last_used = time.monotonic()  # the idle timer sees it when it fires
        return live.ticket

    def ticket_now(self) -> tuple[bool, str | None]:
        live = self._live
        if live is None:
            return True, None
        now = time.monotonic()
        if now >= live.expiry()[0]:
            return False, None  # expired: the loop ends it and says sessionEnded
        live.last_used = now
        return True, live.ticket

    def session_now(self) -> Session | None:
        live = self._live
        if live is None:
            return Session(active=False)
        if time.monotonic() >= live.expiry()[0]:
            return None
        return self._session_of(live)

    async def get_ticket(self, ctx) -> str:
        if self._lock is None:
            self._lock = asyncio.Lock()
        async with self._lock:  # one login at a time; a second tab then reuses it
            live = self._current()
            if live is not None:
                live.last_used = time.monotonic()
                self._schedule()
                return live.ticket
            live = await self._login(ctx)
            with self.state_lock:
                self._live = live
            self._schedule()
            log.info("session started for %s, role %s", live.uid, live.role.id)
            return live.ticket

    def session(self) -> Session:
        live = self._current()
        if live is None:
            return Session(active=False)
        return self._session_of(live)

    @staticmethod
    def _session_of(live: _Live) -> Session:
        wall = time.time() - time.monotonic()
        return Session(
            active=True,
            uid=live.uid,
            roleId=live.role.id,
            idleExpiresAt=round(wall + live.last_used + live.idle_seconds, 3),
            maxExpiresAt=round(wall + live.started + live.max_seconds, 3),
        )

    def card_removed(self, reader: str) -> None:
        if self._live is not None:
            self._end("cardRemoved")

    async def close(self) -> None:
        with self.state_lock:
            live, self._live = self._live, None
        if self._timer:
            self._timer.cancel()
        if live is not None:
            try:
                await asyncio.wait_for(self.host.run_blocking(self._logout, live, 0.4), 0.45)
            except (TimeoutError, CisError, OSError):
                log.info("logout at exit did not complete")

    # ------------------------------------------------------------ sessions

    def _current(self) -> _Live | None:
        live = self._live
        if live is not None:
            end, reason = live.expiry()
            if time.monotonic() >= end:
                self._end(reason)
                return None
        return live

    def _schedule(self) -> None:
        """Wake when the session would expire, so pages hear sessionEnded.

        Uses (getTicketNoAuth) only move ``last_used``; the timer, when it
        fires, finds the session still live and sets itself again."""
        if self._timer:
            self._timer.cancel()
            self._timer = None
        if self._live is not None:
            end, _ = self._live.expiry()
            loop = asyncio.get_running_loop()
            self._timer = loop.call_at(loop.time() + max(0.0, end - time.monotonic()) + 0.01, self._expire)

    def _expire(self) -> None:
        self._timer = None
        if self._current() is not None:  # used meanwhile: not yet
            self._schedule()

    def _end(self, reason: str) -> None:
        if self._timer:
            self._timer.cancel()
            self._timer = None
        with self.state_lock:  # no ticket answered from the reader thread after this
            live, self._live = self._live, None
            if live is None:
                return
            log.info("session for %s ended: %s", live.uid, reason)
            self.host.emit("sessionEnded", SessionEndedData(reason=reason, uid=live.uid))
        if reason != "maxTimeout":
            asyncio.ensure_future(self._logout_quietly(live))

    async def _logout_quietly(self, live: _Live) -> None:
        try:
            await asyncio.wait_for(self.host.run_blocking(self._logout, live, self.config.agent.timeout), self.config.agent.timeout + 1)
        except Exception as exc:  # the session is over locally either way
            log.info("logout at GAS failed: %s", getattr(exc, "message", exc))

    # --------------------------------------------------------------- login

    async def _login(self, ctx) -> _Live:
        from cisbridge.card.auth import sign_challenge
        from cisbridge.spine import gpobject

        base = self._base_url()
        phases = _Phases()
        log_session_id = "".join(secrets.choice(string.ascii_letters + string.digits) for _ in range(10))
        device_id = f"cisbridge-{secrets.token_hex(4)},ClientIP=127.0.0.1"
        activate = await self._exchange(
            ctx,
            "POST",
            base + "/login/authactivate",
            gpobject.encode(
                {
                    "auth_method": "3",
                    "app_url": "NHST",
                    "log_session_id": log_session_id,
                    "device_id": device_id,
                    "service": "ACTIVATION",
                }
            ),
        )
        try:
            challenge_text = activate.require("challenge")
            challenge = gpobject.decode_base64(challenge_text, "challenge")
            server_signature = activate.require("signature")
        except gpobject.GpObjectError as exc:
            raise _unreadable(str(exc)) from None
        reply_url = self._same_origin(activate.get("reply_url"), base + "/login/authvalidate")
        phases.mark("activate")

        signature, certificate = await sign_challenge(ctx, challenge)
        phases.mark("passcode and card signature")
        uid = _card_uid(certificate)
        cms = await ctx.run_blocking(_signed_data, challenge, certificate, signature)
        phases.mark("CMS")

        validate = await self._exchange(
            ctx,
            "POST",
            reply_url,
            gpobject.encode(
                [
                    ("service", "AUTHENTICATION"),
                    ("challenge", challenge_text),
                    ("signature", server_signature),
                    ("uid", uid),
                    ("card_type", "p11"),
                    gpobject.Param.base64("response", cms),
                    ("mobility", "0"),
                    ("log_session_id", log_session_id),
                    ("device_id", device_id),
                ]
            ),
        )
        try:
            ticket = validate.require("sso_ticket")
            roles = [
                Role(id=r.id, org=r.org_name, orgCode=r.org_code, name=r.job_role) for r in gpobject.job_roles(validate)
            ]
            idle = float(validate.get("sso_session_time") or 7200)
            maximum = float(validate.get("sso_max_session_time") or 43200)
        except (gpobject.GpObjectError, ValueError) as exc:
            raise _unreadable(str(exc)) from None
        phases.mark("validate")
        now = time.monotonic()
        live = _Live(
            ticket=ticket,
            uid=uid,
            name=validate.get("cn") or uid,
            role=Role("", "", "", ""),
            idle_seconds=idle,
            max_seconds=maximum,
            started=now,
            last_used=now,
            logout_url=self._same_origin(validate.get("sso_logout_url"), base + "/login/authlogout"),
            log_session_id=log_session_id,
            device_id=device_id,
        )
        try:
            if not roles:
                raise CisError(
                    ErrorCode.AUTHENTICATION_FAILED,
                    "Your smartcard was accepted, but you have no role to work in. Ask your "
                    "Registration Authority to assign you a role.",
                    {"uid": uid},
                )
            if len(roles) == 1:
                live.role = roles[0]
            else:
                phases.mark("-")
                chosen = await ctx.prompt("role", RolePromptData(roles=roles))
                live.role = next(r for r in roles if r.id == chosen)
                phases.mark("role prompt")
            await self._select_role(ctx, base, live)
            phases.mark("role selection")
        except BaseException:
            # Do not leave a half-made session open at GAS.
            asyncio.ensure_future(self._logout_quietly(live))
            raise
        log.info("login phases (ms): %s", phases)
        return live

    async def _select_role(self, ctx, base: str, live: _Live) -> None:
        query = (
            f"token={quote(live.ticket, safe='')}&selectedRoleUid={quote(live.role.id, safe='')}"
            f"&ssbMode=0&fallbackStatus=0&gacVersion={quote(__version__)}"
        )
        status, body = await self._bounded(ctx, "GET", f"{base}/saml/RoleSelectionGP.jsp?{query}", None)
        text = body.decode("utf-8", "replace")
        if status != 200 or "OK" not in text:
            raise CisError(
                ErrorCode.AUTHENTICATION_FAILED,
                "The Spine did not accept the role you chose.",
                {"status": status, "server": _words(text)},
            )

    def _logout(self, live: _Live, timeout: float) -> None:
        from cisbridge.spine import gpobject

        body = gpobject.encode(
            {
                "service": "LOGOUT",
                "sso_ticket": live.ticket,
                "uid": live.uid,
                "log_session_id": live.log_session_id,
                "device_id": live.device_id,
            }
        )
        self._http("POST", live.logout_url, body, timeout)

    # ---------------------------------------------------------------- HTTP

    def _base_url(self) -> str:
        url = (self.config.agent.url or "").rstrip("/")
        if not url:
            raise CisError(
                ErrorCode.AGENT_UNAVAILABLE,
                "The GAS agent has no server address. Set [agent] url (and ca_file) in the "
                "cisbridge configuration, then run `cisbridge doctor`.",
                {"key": "agent.url"},
            )
        return url

    def _same_origin(self, url: str | None, default: str) -> str:
        """A URL GAS gave us, used only if it points back at the configured server."""
        if not url:
            return default
        a, b = urlsplit(url), urlsplit(default)
        if (a.scheme, a.netloc) != (b.scheme, b.netloc):
            log.warning("GAS named another server (%s://%s); using the configured one", a.scheme, a.netloc)
            return default
        return url

    async def _exchange(self, ctx, method: str, url: str, body: bytes):
        from cisbridge.spine import gpobject

        status, data = await self._bounded(ctx, method, url, body)
        try:
            obj = gpobject.decode(data)
        except gpobject.GpObjectError as exc:
            if status != 200:
                raise _server_error(status, data) from None
            raise _unreadable(str(exc)) from None
        if status != 200 or obj.get("error_code"):
            code, text = obj.get("error_code") or str(status), obj.get("error_text") or ""
            if status >= 500:
                raise _server_error(status, data)
            raise CisError(
                ErrorCode.AUTHENTICATION_FAILED,
                f"The Spine refused the login: {text or code}",
                {"status": status, "serverCode": code, "server": _words(text)},
            )
        return obj

    async def _bounded(self, ctx, method: str, url: str, body: bytes | None) -> tuple[int, bytes]:
        timeout = self.config.agent.timeout
        try:
            return await asyncio.wait_for(ctx.run_blocking(self._http, method, url, body, timeout), timeout + 0.5)
        except TimeoutError:
            raise _timeout(timeout) from None

    def _http(self, method: str, url: str, body: bytes | None, timeout: float) -> tuple[int, bytes]:
        """One blocking HTTP exchange; every failure becomes a CisError."""
        import http.client
        import socket
        import ssl

        parts = urlsplit(url)
        path = parts.path + (f"?{parts.query}" if parts.query else "")
        try:
            if parts.scheme == "https":
                conn: http.client.HTTPConnection = http.client.HTTPSConnection(
                    parts.hostname, parts.port, timeout=timeout, context=self._tls()
                )
            else:
                conn = http.client.HTTPConnection(parts.hostname, parts.port, timeout=timeout)
            try:
                headers = {"User-Agent": USER_AGENT, "Accept": "*/*"}
                if body is not None:
                    headers["Content-Type"] = CONTENT_TYPE
                conn.request(method, path or "/", body=body, headers=headers)
                response = conn.getresponse()
                data = response.read(MAX_RESPONSE + 1)
                if len(data) > MAX_RESPONSE:
                    raise _unreadable("the answer is larger than any GAS answer should be")
                return response.status, data
            finally:
                conn.close()
        except ssl.SSLCertVerificationError as exc:
            raise CisError(
                ErrorCode.AGENT_UNAVAILABLE,
                f"The GAS server's certificate is not trusted ({exc.verify_message}). Check [agent] ca_file "
                "in the cisbridge configuration (`cisbridge doctor` tests it).",
                {"url": f"{parts.scheme}://{parts.netloc}"},
            ) from None
        except (socket.timeout, TimeoutError):
            raise _timeout(timeout) from None
        except (OSError, http.client.HTTPException) as exc:
            raise CisError(
                ErrorCode.AGENT_UNAVAILABLE,
                f"Cannot reach the GAS server at {parts.scheme}://{parts.netloc}: {exc}. Check the network "
                "connection (HSCN) and [agent] url.",
                {"url": f"{parts.scheme}://{parts.netloc}"},
            ) from None

    def _tls(self):
        if self._ssl is None:
            import ssl

            try:
                self._ssl = ssl.create_default_context(cafile=self.config.agent.ca_file or None)
            except (OSError, ssl.SSLError) as exc:
                raise CisError(
                    ErrorCode.AGENT_UNAVAILABLE,
                    f"Cannot read the CA file {self.config.agent.ca_file}: {exc}. Fix [agent] ca_file.",
                    {"key": "agent.ca_file"},
                ) from None
        return self._ssl


# ---------------------------------------------------------------- helpers


class _Phases:
    """How long each step of a login took, for the log and the benchmark."""

    def __init__(self) -> None:
        self.last = time.perf_counter()
        self.spent: list[tuple[str, float]] = []

    def mark(self, name: str) -> None:
        now = time.perf_counter()
        if name != "-":
            self.spent.append((name, (now - self.last) * 1000))
        self.last = now

    def __str__(self) -> str:
        return ", ".join(f"{name} {ms:.1f}" for name, ms in self.spent)


def _signed_data(challenge: bytes, certificate: bytes, signature: bytes) -> bytes:
    """CMS SignedData over the challenge, signed on the card already.

    No signed attributes: the card's CKM_SHA1_RSA_PKCS signature is over the
    challenge itself, as the Identity Agent sends it.
    """
    from cisbridge.spine.cms import build_signed_data

    def signed(data: bytes) -> bytes:
        assert data == challenge
        return signature

    return build_signed_data(challenge, certificate, signed, signed_attributes=False)


def _card_uid(certificate: bytes) -> str:
    from cryptography import x509
    from cryptography.x509.oid import NameOID

    cert = x509.load_der_x509_certificate(certificate)
    names = cert.subject.get_attributes_for_oid(NameOID.COMMON_NAME)
    uid = str(names[0].value) if names else ""
    if not (len(uid) == 12 and uid.isdigit()):
        raise CisError(
            ErrorCode.NO_CERTIFICATE,
            "The card's certificate does not name an NHS smartcard holder (CN is not a 12-digit UUID).",
        )
    return uid


def _words(text: str) -> str:
    """A short, single-line excerpt of what the server said, for detail."""
    return " ".join(text.split())[:300]


def _server_error(status: int, data: bytes) -> CisError:
    return CisError(
        ErrorCode.AGENT_UNAVAILABLE,
        f"The GAS server had a problem (HTTP {status}). Try again in a minute; if it persists, call your IT service desk.",
        {"status": status, "server": _words(data.decode("utf-8", "replace"))},
    )


def _unreadable(why: str) -> CisError:
    return CisError(
        ErrorCode.AGENT_UNAVAILABLE,
        "The GAS server sent an answer cisbridge cannot read. Try again; if it persists, call your IT service desk.",
        {"server": _words(why)},
    )


def _timeout(seconds: float) -> CisError:
    return CisError(
        ErrorCode.TIMEOUT,
        f"The GAS server did not answer within {seconds:g} seconds. Try again; if it persists, check the network (HSCN).",
        {"timeout": seconds},
    )

