"""Checks an EHR back end makes on a ticket (the seed's steps 6–7, SPINE.md §4–5).

A web EHR page gets a ticket from ``window.cisAuth.getTicket()`` and sends it to
its own back end.  The back end must not trust it as it stands: it asks the
Spine whether the session is live and which role the user acts in::

    from cisbridge.spine.server import validate_ticket, role_assertion, InvalidTicket

    session = validate_ticket(ticket, "https://ssb.example", ca_file="nhs-ca.pem")
    role = role_assertion(ticket, "https://ssb.example", ca_file="nhs-ca.pem")
    if "B0264" not in role.business_function_codes: ...

Both use only the standard library, verify TLS against ``ca_file`` (or the
system store), never follow redirects (a ticket must not be sent on), and
URL-encode the ticket, which holds ``+ / = @ #``.  Failures are exceptions:
:class:`InvalidTicket` (and its :class:`ExpiredTicket`) when the ticket is no
good, :class:`SpineUnavailable` when the server could not answer properly.
"""

from __future__ import annotations

import http.client
import socket
import ssl
from dataclasses import dataclass, field
from pathlib import Path
from typing import Mapping, NoReturn
from urllib.parse import quote, urlsplit

from cisbridge.origins import is_loopback
from cisbridge.spine import saml, sessionservice
from cisbridge.spine.saml import RoleAssertion

__all__ = [
    "ExpiredTicket", "InvalidTicket", "RoleAssertion", "SpineUnavailable", "TicketCheckError",
    "ValidSession", "role_assertion", "validate_ticket",
]

DEFAULT_TIMEOUT = 10.0
MAX_RESPONSE = 1024 * 1024
ROLE_ASSERTION_PATH = "/saml/RoleAssertion"


class TicketCheckError(Exception):
    """Base of every failure of :func:`validate_ticket` and :func:`role_assertion`."""


class InvalidTicket(TicketCheckError):
    """The Spine does not know the ticket (or it is not a ticket at all): refuse the request."""


class ExpiredTicket(InvalidTicket):
    """The ticket's session has ended (idle or maximum time): ask the user to log in again."""


class SpineUnavailable(TicketCheckError):
    """The Spine could not be reached, timed out, failed, or answered something unreadable.

    The ticket may be fine: do not treat this as a refusal of the user, but do
    not let the request through unchecked either.
    """


@dataclass(frozen=True)
class ValidSession:
    """A live session, as GetSession describes it."""

    uid: str  #: the card holder's 12-digit UUID (``UserId``)
    time_left: int | None  #: seconds until the maximum session time
    idle_time: int | None  #: seconds since the session was last used
    properties: Mapping[str, str] = field(default_factory=dict, repr=False)


def validate_ticket(ticket: str, base_url: str, ca_file: str | Path | None = None,
                    timeout: float = DEFAULT_TIMEOUT, *, reset: bool = True) -> ValidSession:
    """Ask the session service whether ``ticket`` is live (SPINE.md §4).

    ``reset`` (as the public client does) counts the check as activity, so it
    restarts the session's idle timer.
    """
    _check(ticket)
    body = sessionservice.get_session_request(ticket, reset=reset)
    status, data = _request("POST", base_url, sessionservice.PATH, None, body,
                            ca_file, timeout, sessionservice.CONTENT_TYPE)
    if status != 200:
        raise SpineUnavailable(f"the session service answered HTTP {status}")
    try:
        info = sessionservice.parse_get_session_response(data, ticket)
    except sessionservice.SessionServiceError as exc:
        raise SpineUnavailable(f"the session service's answer is unreadable: {exc}") from None
    if not info.valid:
        _refuse(info.exception or "the session service does not recognise the ticket")
    return ValidSession(
        uid=info.properties["UserId"],
        time_left=_int(info.session.get("timeleft")),
        idle_time=_int(info.session.get("timeidle")),
        properties=dict(info.properties),
    )


def role_assertion(ticket: str, base_url: str, ca_file: str | Path | None = None,
                   timeout: float = DEFAULT_TIMEOUT) -> RoleAssertion:
    """The selected role of ``ticket``'s session, from the SSB's SAML RoleAssertion (§5)."""
    _check(ticket)
    status, data = _request("GET", base_url, ROLE_ASSERTION_PATH, "token=" + quote(ticket, safe=""),
                            None, ca_file, timeout, None)
    if status != 200:
        raise SpineUnavailable(f"the role assertion service answered HTTP {status}")
    try:
        return saml.parse_role_assertion(data)
    except saml.AssertionRefused as exc:
        words = exc.status_message or exc.status
    except saml.MalformedAssertion as exc:
        raise SpineUnavailable(str(exc)) from None
    _refuse(words)


def _refuse(server_words: str) -> NoReturn:
    words = server_words.strip()
    lowered = words.lower()
    if "timed out" in lowered or "expired" in lowered:
        raise ExpiredTicket(f"the ticket's session has ended; the user must log in again "
                            f"(Spine: {words})")
    if "no role" in lowered:
        raise InvalidTicket(f"the ticket's session has no role selected (Spine: {words})")
    raise InvalidTicket(f"the Spine does not accept the ticket (Spine: {words})")


def _check(ticket: str) -> None:
    try:
        sessionservice.check_ticket(ticket)
    except ValueError as exc:
        raise InvalidTicket(str(exc)) from None


def _request(method: str, base_url: str, path: str, query: str | None, body: bytes | None,
             ca_file: str | Path | None, timeout: float, content_type: str | None
             ) -> tuple[int, bytes]:
    url = urlsplit(base_url)
    if url.scheme not in ("https", "http") or not url.hostname:
        raise ValueError(f"the Spine URL must be https://host[:port], not {base_url!r}")
    if url.scheme == "http" and not is_loopback(url.hostname):
        raise ValueError("plain http is only accepted for a simulator on loopback; use https")
    target = url.path.rstrip("/") + path + (f"?{query}" if query else "")
    try:
        if url.scheme == "https":
            context = ssl.create_default_context(cafile=str(ca_file) if ca_file else None)
            conn: http.client.HTTPConnection = http.client.HTTPSConnection(
                url.hostname, url.port, timeout=timeout, context=context)
        else:
            conn = http.client.HTTPConnection(url.hostname, url.port, timeout=timeout)
    except (OSError, ssl.SSLError) as exc:
        raise ValueError(f"cannot use the CA file {ca_file}: {exc}") from None
    headers = {"Accept": "text/xml", "User-Agent": "cisbridge"}
    if content_type:
        headers["Content-Type"] = content_type
    try:
        conn.request(method, target, body=body, headers=headers)
        response = conn.getresponse()
        data = response.read(MAX_RESPONSE + 1)
        if len(data) > MAX_RESPONSE:
            raise SpineUnavailable("the Spine's answer is too large")
        return response.status, data
    except ssl.SSLCertVerificationError as exc:
        raise SpineUnavailable(f"the Spine's TLS certificate is not trusted ({exc.verify_message}); "
                               "check ca_file") from None
    except (socket.timeout, TimeoutError):
        raise SpineUnavailable(f"the Spine did not answer within {timeout:g} s") from None
    except (OSError, http.client.HTTPException) as exc:
        raise SpineUnavailable(f"cannot reach the Spine at {url.hostname}: "
                               f"{exc.__class__.__name__}: {exc}") from None
    finally:
        conn.close()


def _int(text: str | None) -> int | None:
    try:
        return int(text) if text is not None else None
    except ValueError:
        return None
