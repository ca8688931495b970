"""The SSB's SAML 1.1 RoleAssertion (SPINE.md §5): names and the parser.

``GET /saml/RoleAssertion?token=<ticket>`` answers a ``samlp:Response``; its
attributes, in namespace ``http://www.syntegra.com``, describe the session's
selected role.  :func:`parse_role_assertion` turns it into a
:class:`RoleAssertion`.
"""

from __future__ import annotations

import datetime as dt
from dataclasses import dataclass, field
from typing import Mapping

from cisbridge.spine import xmlsafe

SAMLP_NS = "urn:oasis:names:tc:SAML:1.0:protocol"
SAML_NS = "urn:oasis:names:tc:SAML:1.0:assertion"
ATTRIBUTE_NS = "http://www.syntegra.com"
CONFIRMATION_METHOD = "urn:com:sun:identity"
ASSERTION_VERSION = "1.1"
#: SPINE.md §5 attribute order (empty ones are omitted).
ATTRIBUTES = (
    "ssbAssertionVersion", "cn", "uid", "nhsOcsPrCode", "ssbSessionRoleUid", "ssbMode",
    "nhsIdCode", "o", "nhsBusinessFunctions", "nhsBusinessFunctionsCodes", "nhsJobRole",
    "uniqueIdentifier", "nhsJobRoleCode",
)
#: clock difference tolerated when checking the Conditions window
CLOCK_SKEW = dt.timedelta(seconds=60)


class RoleAssertionError(ValueError):
    """Base for problems with a RoleAssertion document."""


class MalformedAssertion(RoleAssertionError):
    """The document is not a usable SAML RoleAssertion."""


class AssertionRefused(RoleAssertionError):
    """The SSB answered with a non-success status (``status`` and its message)."""

    def __init__(self, status: str, message: str):
        super().__init__(f"the SSB refused the role assertion ({status}): {message}"
                         if message else f"the SSB refused the role assertion ({status})")
        self.status = status
        self.status_message = message


@dataclass(frozen=True)
class RoleAssertion:
    """Who the ticket's holder is and which role they act in."""

    uid: str  #: the card holder's 12-digit UUID
    name: str  #: display name (``cn``)
    role_profile_id: str  #: ``uniqueIdentifier``: the selected role profile
    session_role_uid: str  #: ``ssbSessionRoleUid``
    org_code: str  #: ``nhsIdCode``
    org_name: str  #: ``o``
    job_role: str  #: ``nhsJobRole``: '"Area":"Sub-area":"Job role"'
    job_role_code: str  #: ``nhsJobRoleCode``, e.g. S8000:G8000:R8003
    business_functions: tuple[str, ...]
    business_function_codes: tuple[str, ...]  #: e.g. ("B0264",)
    training_mode: bool  #: ``ssbMode`` 1
    ocs_pr_code: str | None
    assertion_version: str
    not_before: dt.datetime | None
    not_on_or_after: dt.datetime | None
    #: every attribute as sent, values in order
    attributes: Mapping[str, tuple[str, ...]] = field(default_factory=dict, repr=False)


def parse_role_assertion(data: bytes, *, now: dt.datetime | None = None,
                         check_conditions: bool = True) -> RoleAssertion:
    try:
        root = xmlsafe.parse(data)
    except xmlsafe.XMLError as exc:
        raise MalformedAssertion(f"the role assertion is not XML: {exc}") from None
    if root.tag != f"{{{SAMLP_NS}}}Response":
        raise MalformedAssertion("the role assertion is not a SAML 1.1 samlp:Response")
    code = root.find(f"{{{SAMLP_NS}}}Status/{{{SAMLP_NS}}}StatusCode")
    if code is None:
        raise MalformedAssertion("the SAML response has no StatusCode")
    status = code.get("Value", "")
    if status.rpartition(":")[2] != "Success":
        message = root.findtext(f"{{{SAMLP_NS}}}Status/{{{SAMLP_NS}}}StatusMessage") or ""
        raise AssertionRefused(status, message.strip())
    assertion = root.find(f"{{{SAML_NS}}}Assertion")
    if assertion is None:
        raise MalformedAssertion("the SAML response holds no Assertion")

    conditions = assertion.find(f"{{{SAML_NS}}}Conditions")
    not_before = _time(conditions.get("NotBefore")) if conditions is not None else None
    not_after = _time(conditions.get("NotOnOrAfter")) if conditions is not None else None
    if check_conditions:
        at = now or dt.datetime.now(dt.timezone.utc)
        if not_before and at + CLOCK_SKEW < not_before:
            raise MalformedAssertion("the role assertion is not valid yet (check the clock)")
        if not_after and at - CLOCK_SKEW >= not_after:
            raise MalformedAssertion("the role assertion has expired")

    attrs: dict[str, list[str]] = {}
    for statement in assertion.iter(f"{{{SAML_NS}}}AttributeStatement"):
        for attr in statement.findall(f"{{{SAML_NS}}}Attribute"):
            if attr.get("AttributeNamespace", ATTRIBUTE_NS) != ATTRIBUTE_NS:
                continue
            values = [(v.text or "").strip() for v in attr.findall(f"{{{SAML_NS}}}AttributeValue")]
            attrs.setdefault(attr.get("AttributeName", ""), []).extend(values)

    def one(name: str, required: bool = True) -> str | None:
        values = attrs.get(name) or []
        if not values or not values[0]:
            if required:
                raise MalformedAssertion(f"the role assertion has no {name} attribute")
            return None
        return values[0]

    uid = one("uid")
    ident = assertion.findtext(f".//{{{SAML_NS}}}NameIdentifier")
    if ident is not None and ident.strip().lower() != f"uid={uid},ou=people,o=nhs".lower():
        raise MalformedAssertion("the role assertion's subject does not match its uid")
    return RoleAssertion(
        uid=uid,  # type: ignore[arg-type]
        name=one("cn"),  # type: ignore[arg-type]
        role_profile_id=one("uniqueIdentifier"),  # type: ignore[arg-type]
        session_role_uid=one("ssbSessionRoleUid", False) or one("uniqueIdentifier"),  # type: ignore[arg-type]
        org_code=one("nhsIdCode"),  # type: ignore[arg-type]
        org_name=one("o", False) or "",
        job_role=one("nhsJobRole", False) or "",
        job_role_code=one("nhsJobRoleCode", False) or "",
        business_functions=tuple(attrs.get("nhsBusinessFunctions", ())),
        business_function_codes=tuple(attrs.get("nhsBusinessFunctionsCodes", ())),
        training_mode=one("ssbMode", False) == "1",
        ocs_pr_code=one("nhsOcsPrCode", False),
        assertion_version=one("ssbAssertionVersion", False) or "",
        not_before=not_before,
        not_on_or_after=not_after,
        attributes={k: tuple(v) for k, v in attrs.items()},
    )


def format_time(when: dt.datetime) -> str:
    return when.astimezone(dt.timezone.utc).strftime("%Y-%m-%dT%H:%M:%SZ")


def _time(text: str | None) -> dt.datetime | None:
    if not text:
        return None
    try:
        value = dt.datetime.fromisoformat(text.replace("Z", "+00:00"))
    except ValueError:
        raise MalformedAssertion(f"the role assertion holds a bad time {text!r}") from None
    return value if value.tzinfo else value.replace(tzinfo=dt.timezone.utc)
