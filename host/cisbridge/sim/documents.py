"""The XML documents the simulator answers with, besides gpOBJECT."""

from __future__ import annotations

import datetime as dt
import math
import secrets
from typing import Iterable
from xml.sax.saxutils import escape, quoteattr

from cisbridge.spine.saml import (ASSERTION_VERSION, ATTRIBUTE_NS, CONFIRMATION_METHOD,
                                  SAML_NS, SAMLP_NS, format_time)
from cisbridge.sim.users import Role, User

#: SPINE.md §5: the Conditions window is about ±3 minutes
CONDITIONS_WINDOW = dt.timedelta(minutes=3)


def role_assertion(user: User, role: Role, ssb_mode: int, issuer: str) -> bytes:
    now = dt.datetime.now(dt.timezone.utc)
    attrs: list[tuple[str, Iterable[str]]] = [
        ("ssbAssertionVersion", [ASSERTION_VERSION]),
        ("cn", [user.name]),
        ("uid", [user.uuid]),
        ("nhsOcsPrCode", [user.ocs_pr_code] if user.ocs_pr_code else []),
        ("ssbSessionRoleUid", [role.id]),
        ("ssbMode", [str(ssb_mode)]),
        ("nhsIdCode", [role.org_code]),
        ("o", [role.org_name]),
        ("nhsBusinessFunctions", role.business_functions),
        ("nhsBusinessFunctionsCodes", role.business_function_codes),
        ("nhsJobRole", [role.job_role]),
        ("uniqueIdentifier", [role.id]),
        ("nhsJobRoleCode", [role.job_role_code]),
    ]
    rendered = []
    for name, values in attrs:
        values = [v for v in values if v]
        if not values:  # SPINE.md §5: empty attributes are omitted
            continue
        rendered.append(
            f'<saml:Attribute AttributeName={quoteattr(name)} AttributeNamespace="{ATTRIBUTE_NS}">'
            + "".join(f"<saml:AttributeValue>{escape(v)}</saml:AttributeValue>" for v in values)
            + "</saml:Attribute>")
    subject = (f"<saml:Subject><saml:NameIdentifier>uid={escape(user.uuid)},ou=People,o=nhs"
               "</saml:NameIdentifier><saml:SubjectConfirmation><saml:ConfirmationMethod>"
               f"{CONFIRMATION_METHOD}</saml:ConfirmationMethod></saml:SubjectConfirmation>"
               "</saml:Subject>")
    assertion = (
        f'<saml:Assertion MajorVersion="1" MinorVersion="1" AssertionID="{_id()}" '
        f'Issuer={quoteattr(issuer)} IssueInstant="{format_time(now)}">'
        f'<saml:Conditions NotBefore="{format_time(now - CONDITIONS_WINDOW)}" '
        f'NotOnOrAfter="{format_time(now + CONDITIONS_WINDOW)}"/>'
        f"<saml:AttributeStatement>{subject}{''.join(rendered)}</saml:AttributeStatement>"
        "</saml:Assertion>")
    return _response("samlp:Success", None, assertion, now)


def role_assertion_refused(status: str, message: str) -> bytes:
    return _response(status, message, "", dt.datetime.now(dt.timezone.utc))


def _response(status: str, message: str | None, body: str, now: dt.datetime) -> bytes:
    msg = f"<samlp:StatusMessage>{escape(message)}</samlp:StatusMessage>" if message else ""
    return (
        '<?xml version="1.0" encoding="UTF-8"?>'
        f'<samlp:Response xmlns:samlp="{SAMLP_NS}" xmlns:saml="{SAML_NS}" '
        f'MajorVersion="1" MinorVersion="1" ResponseID="{_id()}" IssueInstant="{format_time(now)}">'
        f'<samlp:Status><samlp:StatusCode Value="{status}"/>{msg}</samlp:Status>'
        f"{body}</samlp:Response>"
    ).encode("utf-8")


def session_response(results: list[str]) -> bytes:
    """A ResponseSet wrapping each rendered GetSession result."""
    responses = "".join(
        f'<Response><![CDATA[<SessionResponse vers="1.0" reqid="{i}">{r}</SessionResponse>]]>'
        "</Response>" for i, r in enumerate(results))
    return ('<?xml version="1.0" encoding="UTF-8" standalone="yes"?>'
            f'<ResponseSet vers="1.0" svcid="session" reqid="0">{responses}</ResponseSet>'
            ).encode("utf-8")


def get_session_valid(ticket: str, user: User, role: Role | None, *, max_time: float,
                      idle_time: float, time_left: float, time_idle: float) -> str:
    props = {
        "SessionHandle": f"shandle:{ticket}",
        "UserId": user.uuid,
        "Principal": f"uid={user.uuid},ou=People,o=nhs",
        "CharSet": "UTF-8",
    }
    if role is not None:
        props["ssbSessionRoleUid"] = role.id
    rendered = "".join(f"<Property name={quoteattr(k)} value={quoteattr(v)}></Property>"
                       for k, v in props.items())
    # OpenSSO gives maxtime and maxidle in minutes, timeleft and timeidle in seconds.
    return (f"<GetSession><Session sid={quoteattr(ticket)} stype=\"user\" "
            f"cid={quoteattr(f'uid={user.uuid},ou=People,o=nhs')} cdomain=\"o=nhs\" "
            f'maxtime="{math.ceil(max_time / 60)}" maxidle="{math.ceil(idle_time / 60)}" '
            f'maxcaching="3" timeidle="{int(time_idle)}" timeleft="{int(time_left)}" '
            f'state="valid">{rendered}</Session></GetSession>')


def get_session_exception(message: str, op: str = "GetSession") -> str:
    return f"<{op}><Exception>{escape(message)}</Exception></{op}>"


def _id() -> str:
    return "s2" + secrets.token_hex(20)
