"""The "gpOBJECT" XML bodies GAS speaks (SPINE.md §3).

A gpOBJECT is an ordered list of named parameters::

    <?xml version="1.0" encoding="UTF-8"?>
    <!DOCTYPE USER SYSTEM "gpOBJECT.DTD">
    <gpOBJECT>
    <gpPARAM name="service">ACTIVATION</gpPARAM>
    <gpPARAM name="response" encoding="base64">MIIG…</gpPARAM>
    <gpPARAM name="nhsjobrole1" id="555000000101" orgcode="X09">ORG, "A":"B":"C"</gpPARAM>
    </gpOBJECT>

Names may repeat in principle, so the object keeps order and every attribute;
``obj["name"]`` is the first value.  Decoding goes through :mod:`xmlsafe`: no
entities, no DTD fetch, bounded size.
"""

from __future__ import annotations

import base64
import binascii
import re
from dataclasses import dataclass, field
from typing import Iterable, Iterator, Mapping
from xml.sax.saxutils import escape, quoteattr

from cisbridge.spine import xmlsafe

DOCTYPE = '<!DOCTYPE USER SYSTEM "gpOBJECT.DTD">'
CONTENT_TYPE = "text/xml; charset=UTF-8"
#: Bound on an encoded gpOBJECT: the largest real one (authvalidate with a
#: CMS SignedData and a certificate chain) is a few kilobytes.
MAX_BYTES = 64 * 1024

_NAME = re.compile(r"[A-Za-z_][A-Za-z0-9_.\-]{0,127}")
#: characters XML 1.0 cannot carry at all (not even escaped)
_INVALID_XML_CHARS = re.compile("[\x00-\x08\x0b\x0c\x0e-\x1f\ufffe\uffff]")


class GpObjectError(ValueError):
    """A gpOBJECT could not be decoded (or a value could not be encoded)."""


@dataclass(frozen=True)
class Param:
    """One ``<gpPARAM name=… [attr=…]>value</gpPARAM>``."""

    name: str
    value: str = field(default="", repr=False)  # may be a ticket or a signature
    attributes: Mapping[str, str] = field(default_factory=dict)

    @classmethod
    def base64(cls, name: str, data: bytes) -> "Param":
        """A binary value, sent base64 with ``encoding="base64"``."""
        return cls(name, base64.b64encode(data).decode("ascii"), {"encoding": "base64"})

    def binary(self) -> bytes:
        """The value's bytes: base64-decoded when ``encoding="base64"``."""
        if self.attributes.get("encoding", "").lower() == "base64":
            return decode_base64(self.value, self.name)
        return self.value.encode("utf-8")


@dataclass(frozen=True)
class GpObject:
    params: tuple[Param, ...] = ()

    def __iter__(self) -> Iterator[Param]:
        return iter(self.params)

    def __len__(self) -> int:
        return len(self.params)

    def __contains__(self, name: object) -> bool:
        return any(p.name == name for p in self.params)

    def __getitem__(self, name: str) -> str:
        param = self.param(name)
        if param is None:
            raise KeyError(name)
        return param.value

    def get(self, name: str, default: str | None = None) -> str | None:
        param = self.param(name)
        return default if param is None else param.value

    def param(self, name: str) -> Param | None:
        """The first parameter called ``name``, or None."""
        return next((p for p in self.params if p.name == name), None)

    def numbered(self, prefix: str) -> list[Param]:
        """``prefix1``, ``prefix2``, … in numeric order (e.g. ``nhsjobrole``)."""
        found = []
        for p in self.params:
            suffix = p.name[len(prefix):]
            if p.name.startswith(prefix) and suffix.isdigit():
                found.append((int(suffix), p))
        return [p for _, p in sorted(found, key=lambda item: item[0])]

    def require(self, name: str) -> str:
        """The value of ``name``; :class:`GpObjectError` naming it when absent or empty."""
        value = self.get(name)
        if not value:
            raise GpObjectError(f"the gpOBJECT has no {name!r} parameter")
        return value

    def __repr__(self) -> str:  # tickets, challenges and signatures stay out of logs
        return f"GpObject(names={[p.name for p in self.params]})"


@dataclass(frozen=True)
class JobRole:
    """One ``nhsjobroleN`` of an authvalidate answer."""

    id: str  #: role profile id (12 digits): what RoleSelectionGP's selectedRoleUid takes
    org_code: str
    org_name: str
    job_role: str  #: '"Area":"Sub-area":"Job role"' (the whole text when it has no such part)
    text: str  #: the parameter's text as sent: 'ORG NAME, "Area":"Sub-area":"Job role"'


def job_roles(obj: GpObject) -> list[JobRole]:
    """The roles an authvalidate answer offers, in ``nhsjobrole1..N`` order.

    The text is ``ORG NAME, "Area":"Sub-area":"Job role"``; an organisation name
    may itself hold commas, so it is split before the first ``, "``.
    """
    roles = []
    for p in obj.numbered("nhsjobrole"):
        role_id = p.attributes.get("id", "")
        if not role_id:
            raise GpObjectError(f"{p.name} has no id attribute")
        org_name, sep, job = p.value.partition(', "')
        roles.append(JobRole(role_id, p.attributes.get("orgcode", ""),
                             org_name.strip() if sep else "",
                             ('"' + job).strip() if sep else p.value.strip(), p.value))
    return roles


def decode_base64(text: str, what: str = "value") -> bytes:
    try:
        return base64.b64decode("".join(text.split()), validate=True)
    except (binascii.Error, ValueError):
        raise GpObjectError(f"the {what!r} parameter is not valid base64") from None


def encode(params: Iterable[Param | tuple[str, str]] | Mapping[str, str]) -> bytes:
    """Serialise parameters (Params, (name, value) pairs, or a mapping) as UTF-8 gpOBJECT."""
    items = params.items() if isinstance(params, Mapping) else params
    lines = ['<?xml version="1.0" encoding="UTF-8"?>', DOCTYPE, "<gpOBJECT>"]
    for item in items:
        param = item if isinstance(item, Param) else Param(*item)
        _check_name(param.name)
        if "name" in param.attributes:
            raise GpObjectError("'name' is the gpPARAM's own attribute; pass it as Param.name")
        attrs = "".join(f" {_check_name(k)}={quoteattr(_check_text(v))}"
                        for k, v in param.attributes.items())
        lines.append(f"<gpPARAM name={quoteattr(param.name)}{attrs}>"
                     f"{escape(_check_text(param.value), {chr(13): '&#13;'})}</gpPARAM>")
    lines.append("</gpOBJECT>")
    return ("\n".join(lines) + "\n").encode("utf-8")


def decode(data: bytes | str, *, max_bytes: int = MAX_BYTES) -> GpObject:
    """Parse a gpOBJECT. Raises :class:`GpObjectError` saying what is wrong."""
    try:
        root = xmlsafe.parse(data, max_bytes=max_bytes)
    except xmlsafe.XMLError as exc:
        raise GpObjectError(f"not a gpOBJECT: {exc}") from None
    if root.tag != "gpOBJECT":
        raise GpObjectError(f"not a gpOBJECT: the root element is <{root.tag}>")
    params = []
    for child in root:
        if child.tag != "gpPARAM":
            raise GpObjectError(f"unexpected <{child.tag}> inside <gpOBJECT>")
        if len(child):
            raise GpObjectError("a <gpPARAM> holds elements; only text is allowed")
        attributes = dict(child.attrib)
        name = attributes.pop("name", None)
        if not name:
            raise GpObjectError("a <gpPARAM> has no name attribute")
        params.append(Param(name, child.text or "", attributes))
    return GpObject(tuple(params))


def _check_name(name: str) -> str:
    if not isinstance(name, str) or not _NAME.fullmatch(name):
        raise GpObjectError(f"{name!r} is not a valid gpPARAM name or attribute")
    return name


def _check_text(value: str) -> str:
    if not isinstance(value, str):
        raise GpObjectError(f"gpPARAM values are text, not {type(value).__name__}")
    if _INVALID_XML_CHARS.search(value):
        raise GpObjectError("the value holds control characters XML cannot carry")
    return value
