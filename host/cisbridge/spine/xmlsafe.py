"""Parse XML that came over the network, safely.

The Spine's documents (gpOBJECT, OpenSSO session responses, SAML) never need
entities or a DTD, so this parser refuses both outright rather than trying to
expand them safely: a DOCTYPE is allowed only without an internal subset (the
gpOBJECT one is ``<!DOCTYPE USER SYSTEM "gpOBJECT.DTD">``), the external DTD is
never fetched, and any entity declaration or external reference is an error.
That rules out entity expansion bombs and external entity reads (XXE).

Expat is driven directly (not through ``xml.etree.ElementTree.XMLParser``)
because the C-accelerated parser does not let us install these handlers.
"""

from __future__ import annotations

from xml.etree.ElementTree import Element, TreeBuilder
from xml.parsers import expat

#: Default bound on a document's size: Spine messages are a few kilobytes.
MAX_BYTES = 256 * 1024


class XMLError(ValueError):
    """The bytes are not a well-formed, acceptable XML document."""


def parse(data: bytes | str, *, max_bytes: int = MAX_BYTES) -> Element:
    """Parse ``data`` into an ElementTree element with ``{namespace}local`` tags.

    Raises :class:`XMLError` for anything malformed, oversized or using a DTD
    internal subset, entities or external references.
    """
    if isinstance(data, str):
        data = data.encode("utf-8")
    if len(data) > max_bytes:
        raise XMLError(f"the document is {len(data)} bytes, over the limit of {max_bytes}")
    builder = TreeBuilder()
    parser = expat.ParserCreate(namespace_separator="}")
    parser.SetParamEntityParsing(expat.XML_PARAM_ENTITY_PARSING_NEVER)

    def name(raw: str) -> str:
        return "{" + raw if "}" in raw else raw

    def start(tag: str, attrs: dict[str, str]) -> None:
        builder.start(name(tag), {name(k): v for k, v in attrs.items()})

    def end(tag: str) -> None:
        builder.end(name(tag))

    def doctype(_name: str, _sysid: str | None, _pubid: str | None, internal_subset: int) -> None:
        if internal_subset:
            raise XMLError("a DTD internal subset is not accepted")

    def refuse(*_args: object) -> None:
        raise XMLError("entity declarations and external references are not accepted")

    parser.StartElementHandler = start
    parser.EndElementHandler = end
    parser.CharacterDataHandler = builder.data
    parser.StartDoctypeDeclHandler = doctype
    parser.EntityDeclHandler = refuse
    parser.UnparsedEntityDeclHandler = refuse
    parser.NotationDeclHandler = refuse
    parser.ExternalEntityRefHandler = refuse
    parser.SkippedEntityHandler = refuse
    try:
        parser.Parse(data, True)
    except expat.ExpatError as exc:
        raise XMLError(f"not well-formed XML: {expat.errors.messages[exc.code]} "
                       f"(line {exc.lineno}, column {exc.offset})") from None
    try:
        return builder.close()
    except Exception:  # TreeBuilder asserts on an empty document
        raise XMLError("the document has no root element") from None
