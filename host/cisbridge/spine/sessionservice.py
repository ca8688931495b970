"""OpenSSO's session service as the Spine exposes it (SPINE.md §4).

A client posts a ``RequestSet`` (svcid ``session``) to ``/amserver/sessionservice``
whose ``Request`` holds, as CDATA, a ``SessionRequest`` with
``<GetSession reset="true"><SessionID>TOKEN</SessionID></GetSession>``.  The
answer is a ``ResponseSet`` whose ``Response`` CDATA holds a ``SessionResponse``:
either a ``Session`` with ``Property`` elements (valid when ``SessionHandle`` is
``shandle:TOKEN`` and ``UserId`` is present) or an ``Exception``.
"""

from __future__ import annotations

import re
from dataclasses import dataclass, field
from typing import Mapping
from xml.sax.saxutils import escape, quoteattr

from cisbridge.spine import xmlsafe

PATH = "/amserver/sessionservice"
CONTENT_TYPE = "text/xml; charset=UTF-8"
#: an OpenSSO session id: base64 with the @ and # of its site suffix, URL-safe variants and dots
TICKET_PATTERN = re.compile(r"[A-Za-z0-9+/=@#*._\-~%:!]{8,4096}")


class SessionServiceError(ValueError):
    """A session-service document is malformed."""


@dataclass(frozen=True)
class SessionInfo:
    """What GetSession says of a session."""

    valid: bool
    properties: Mapping[str, str] = field(default_factory=dict)
    #: the Session element's attributes (sid, maxtime, maxidle, timeleft, timeidle, state…)
    session: Mapping[str, str] = field(default_factory=dict)
    exception: str | None = None


def check_ticket(ticket: str) -> str:
    """Reject what cannot be a ticket before it reaches a document or a URL."""
    if not isinstance(ticket, str) or not TICKET_PATTERN.fullmatch(ticket):
        raise ValueError("that is not an SSO ticket (expected 8–4096 characters of an "
                         "OpenSSO session id)")
    return ticket


def get_session_request(ticket: str, *, reset: bool = True, reqid: str = "1") -> bytes:
    inner = (f'<SessionRequest vers="1.0" reqid={quoteattr(reqid)}>'
             f'<GetSession reset="{"true" if reset else "false"}">'
             f"<SessionID>{escape(check_ticket(ticket))}</SessionID>"
             "</GetSession></SessionRequest>")
    return ('<?xml version="1.0" encoding="UTF-8" standalone="yes"?>'
            f'<RequestSet vers="1.0" svcid="session" reqid={quoteattr(reqid)}>'
            f"<Request><![CDATA[{inner}]]></Request></RequestSet>").encode("utf-8")


def parse_request(data: bytes) -> list[tuple[str, str, bool]]:
    """The simulator's side: ``[(operation, session id, reset)]`` of a RequestSet."""
    root = _parse(data, "RequestSet")
    if root.get("svcid") != "session":
        raise SessionServiceError("the RequestSet is not for the session service")
    ops = []
    for request in root.findall("Request"):
        inner = _parse((request.text or "").encode("utf-8"), "SessionRequest")
        for op in inner:
            sid = (op.findtext("SessionID") or "").strip()
            ops.append((op.tag, sid, op.get("reset", "false").lower() == "true"))
    if not ops:
        raise SessionServiceError("the RequestSet holds no request")
    return ops


def parse_get_session_response(data: bytes, ticket: str) -> SessionInfo:
    root = _parse(data, "ResponseSet")
    response = root.find("Response")
    if response is None:
        raise SessionServiceError("the ResponseSet holds no Response")
    inner = _parse((response.text or "").encode("utf-8"), "SessionResponse")
    get = inner.find("GetSession")
    if get is None:
        raise SessionServiceError("the SessionResponse holds no GetSession")
    exception = get.findtext("Exception")
    session = get.find("Session")
    if session is None:
        return SessionInfo(False, exception=(exception or "no session").strip())
    props = {p.get("name", ""): p.get("value", "") for p in session.findall("Property")}
    valid = (props.get("SessionHandle") == f"shandle:{ticket}" and bool(props.get("UserId"))
             and session.get("state", "valid") == "valid")
    return SessionInfo(valid, props, dict(session.attrib), exception)


def _parse(data: bytes, root_tag: str):
    try:
        root = xmlsafe.parse(data)
    except xmlsafe.XMLError as exc:
        raise SessionServiceError(f"the {root_tag} is not XML: {exc}") from None
    if root.tag != root_tag:
        raise SessionServiceError(f"expected a {root_tag}, got <{root.tag}>")
    return root
