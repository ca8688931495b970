"""Who may call, checked against its specification.

``cisbridge.origins`` parses origins and extension ids with string methods
(``re`` costs the host ~5 ms of its cold start).  The regular expressions it
used before are kept here, verbatim, as the specification; the property
tests compare the two on random and adversarial strings, error messages
included.  Two differences are deliberate, and tested as such:

- ``$`` in a Python regular expression also matches before a trailing
  newline, so ``^[a-p]{32}$`` accepted "<id>\\n" (and a Firefox id or
  ``chrome-extension://<id>/`` with a newline after it).  A browser never
  passes that; the new checks refuse it.
- The host was lower-cased before it was checked, and "\\u212a" (KELVIN SIGN)
  lower-cases to an ASCII "k": "https://\\u212aey.example" was accepted as
  https://key.example.  A host must now be written in ASCII (browsers
  serialise origins in ASCII, punycode for international names).
"""

from __future__ import annotations

import ipaddress
import re

import pytest
from hypothesis import example, given, settings
from hypothesis import strategies as st

from cisbridge.origins import OriginError, caller_from_argv, canonical_extension_id, canonical_origin

# ------------------------------------------------------- the specification
# (cisbridge/origins.py before the ``re`` import was dropped, verbatim)

_DEFAULT_PORTS = {"https": 443, "http": 80}
_CHROME_ID = re.compile(r"^[a-p]{32}$")
_CHROME_ORIGIN = re.compile(r"^chrome-extension://([a-p]{32})/?$")
_FIREFOX_ID = re.compile(r"^(?:[A-Za-z0-9._+-]{1,80}@[A-Za-z0-9._-]{1,80}|\{[0-9A-Fa-f-]{36}\})$")
_ORIGIN = re.compile(r"([A-Za-z][A-Za-z0-9+.-]*)://([^/?#]*)(.*)", re.S)
_HOST = re.compile(r"[a-z0-9_~-][a-z0-9._~-]*")
_PORT = re.compile(r"[0-9]{1,5}")


def spec_canonical_origin(text: str) -> str:
    if not isinstance(text, str) or not text:
        raise OriginError("an origin is a string like https://ehr.example.nhs.uk")
    if text == "null":
        raise OriginError("opaque origin 'null' (sandboxed frame or file) is never allowed")
    m = _ORIGIN.fullmatch(text)
    if not m:
        raise OriginError("not an origin: scheme://host[:port] expected")
    scheme, authority, rest = m.group(1).lower(), m.group(2), m.group(3)
    if scheme not in _DEFAULT_PORTS:
        raise OriginError(f"scheme {scheme!r} is not allowed: use https")
    if "@" in authority:
        raise OriginError("an origin has no user name or password")
    if rest not in ("", "/"):
        raise OriginError("an origin has no path, query or fragment: scheme://host[:port] only")
    if authority.startswith("["):  # IPv6 literal
        end = authority.find("]")
        host, port_part = authority[: end + 1].lower(), authority[end + 1 :]
        try:
            ipaddress.IPv6Address(host[1:-1])
        except ValueError:
            raise OriginError(f"not an IPv6 address: {host}") from None
    else:
        host, colon, port_part = authority.partition(":")
        host, port_part = host.lower(), colon + port_part
        if not host:
            raise OriginError("an origin needs a host")
        if "*" in host:
            raise OriginError("wildcards are not supported: list each origin exactly")
        if not _HOST.fullmatch(host):
            raise OriginError(f"not a host name: {host!r}")
    port = None
    if port_part:
        if not (port_part.startswith(":") and _PORT.fullmatch(port_part[1:]) and int(port_part[1:]) <= 65535):
            raise OriginError(f"not a port: {port_part[1:]!r}")
        port = int(port_part[1:])
    if port is None or port == _DEFAULT_PORTS[scheme]:
        return f"{scheme}://{host}"
    return f"{scheme}://{host}:{port}"


def spec_canonical_extension_id(text: str) -> str:
    m = _CHROME_ORIGIN.match(text)
    if m:
        return m.group(1)
    if _CHROME_ID.match(text) or _FIREFOX_ID.match(text):
        return text
    raise OriginError(
        "not an extension id: use a Chromium id (32 letters a-p), chrome-extension://ID/, "
        "or a Firefox add-on id such as cisbridge@cisbridge.org"
    )


def spec_caller_from_argv(argv: list[str]) -> str | None:
    args = [a for a in argv if not a.startswith("--parent-window=")]
    for arg in args:
        m = _CHROME_ORIGIN.match(arg)
        if m:
            return m.group(1)
    if len(args) == 2 and _FIREFOX_ID.match(args[1]):
        return args[1]
    return None


# ------------------------------------------------------- comparing

def outcome(function, value):
    try:
        return ("ok", function(value))
    except OriginError as exc:
        return ("refused", str(exc))


def kelvin_host(text: str) -> bool:
    """The deliberate origin difference: a host not written in ASCII that
    lower-cases to a valid ASCII one (only the Kelvin sign does)."""
    return "\u212a" in text


def assert_origin_agrees(text: str) -> None:
    spec, new = outcome(spec_canonical_origin, text), outcome(canonical_origin, text)
    if new == spec:
        return
    assert kelvin_host(text) and new[0] == "refused" and new[1].startswith("not a host name"), (text, spec, new)


def assert_extension_id_agrees(text: str) -> None:
    spec, new = outcome(spec_canonical_extension_id, text), outcome(canonical_extension_id, text)
    if new == spec:
        return
    # only the trailing newline that ``$`` let through
    assert spec[0] == "ok" and new[0] == "refused" and text.endswith("\n"), (text, spec, new)
    assert outcome(canonical_extension_id, text[:-1]) == outcome(spec_canonical_extension_id, text[:-1])


# ------------------------------------------------------- strategies

HOSTILE = "\n\r\t \x00\x0b\x85\u2028\u212a\u0130\u017f\xdf\xe9\uff0e\u00b2\u0663\U0001f600"
#: any ASCII character, or one of the hostile ones
chars = st.one_of(st.characters(max_codepoint=127), st.sampled_from(HOSTILE))
_ends = st.sampled_from(["", "/", "//", "\n", "/\n", "\n\n", " ", "\r", "/x", "\x00"])


@st.composite
def mutated(draw, strategy):
    """A string from strategy, then up to two random edits: near misses."""
    text = draw(strategy)
    for _ in range(draw(st.integers(0, 2))):
        at = draw(st.integers(0, len(text)))
        edit = draw(st.sampled_from(["insert", "replace", "delete"]))
        if edit == "insert":
            text = text[:at] + draw(chars) + text[at:]
        elif edit == "replace":
            text = text[:at] + draw(chars) + text[at + 1 :]
        else:
            text = text[:at] + text[at + 1 :]
    return text


@st.composite
def chrome_like(draw):
    prefix = draw(st.sampled_from(["", "chrome-extension://", "Chrome-extension://", "chrome-extension:/", "moz-extension://"]))
    return prefix + draw(st.text(alphabet="abcdefghijklmnop", min_size=31, max_size=33)) + draw(_ends)


@st.composite
def firefox_like(draw):
    if draw(st.booleans()):
        inner = draw(st.text(alphabet="0123456789abcdefABCDEF-", min_size=35, max_size=37))
        return "{" + inner + "}" + draw(_ends)
    part = st.text(alphabet="aZ9._+-", min_size=0, max_size=82)
    return draw(part) + draw(st.sampled_from(["@", "", "@@"])) + draw(part) + draw(_ends)


@st.composite
def origin_like(draw):
    scheme = draw(st.sampled_from(["https", "http", "HTTPS", "hTTp", "ftp", "h", "1http", "chrome-extension", "", "https:"]))
    sep = draw(st.sampled_from(["://", "://", ":/", ":", "//", ":///"]))
    kind = draw(st.integers(0, 3))
    if kind == 0:
        host = draw(st.from_regex(r"[a-zA-Z0-9_~.\-*]{0,20}", fullmatch=True))
    elif kind == 1:
        host = "[" + str(draw(st.ip_addresses(v=6))) + draw(st.sampled_from(["", "%eth0", "%", "%\n"])) + draw(st.sampled_from(["]", "", "]]"]))
    elif kind == 2:
        host = str(draw(st.ip_addresses(v=4)))
    else:
        host = draw(st.text(alphabet=chars, max_size=12))
    port = draw(st.one_of(
        st.just(""),
        st.integers(0, 100_000).map(lambda n: f":{n}"),
        st.text(alphabet="0123456789:\u00b2\u0663 +-", max_size=7).map(lambda p: ":" + p),
    ))
    rest = draw(st.sampled_from(["", "/", "//", "/path", "?q", "#f", "\n", "/\n", " ", "/?", "#"]))
    return scheme + sep + host + port + rest


texts = st.one_of(st.text(max_size=60), st.text(alphabet="abcp:/?#[]@.%\n" + HOSTILE, max_size=40))


# ------------------------------------------------------- the properties

@settings(max_examples=500)
@given(st.one_of(mutated(origin_like()), texts, st.from_regex(_ORIGIN, fullmatch=True)))
@example("https://\u212aey.example")
@example("https://[::1%\u212a]")
@example("https://a.example:\u0663")
@example("HTTPS://EHR.Example.NHS.uk:443/")
def test_canonical_origin_agrees_with_its_regex_specification(text):
    assert_origin_agrees(text)


@settings(max_examples=500)
@given(st.one_of(mutated(chrome_like()), mutated(firefox_like()), texts,
                 st.from_regex(_CHROME_ORIGIN), st.from_regex(_CHROME_ID), st.from_regex(_FIREFOX_ID)))
@example("ekiaedepebiljeejbccahljdhmdiocpb\n")
@example("a" * 80 + "@" + "b" * 80)
@example("a" * 81 + "@b")
@example("{" + "0" * 36 + "}")
def test_canonical_extension_id_agrees_with_its_regex_specification(text):
    assert_extension_id_agrees(text)


@settings(max_examples=300)
@given(st.lists(st.one_of(mutated(chrome_like()), mutated(firefox_like()), st.from_regex(_FIREFOX_ID), st.from_regex(_CHROME_ORIGIN),
                          st.just("--parent-window=0"), st.just("/path/to/manifest.json"), texts), max_size=4))
def test_caller_from_argv_agrees_with_its_regex_specification(argv):
    # The specification with every argument that ends in a newline made
    # plainly invalid: what the new code does with such an argument.
    plain = [a if a.startswith("--parent-window=") or not a.endswith("\n") else "-" for a in argv]
    assert caller_from_argv(argv) == spec_caller_from_argv(plain)
    if caller_from_argv(argv) != spec_caller_from_argv(argv):
        assert plain != argv


# ------------------------------------------------------- every near miss
# Random strings rarely land on a character class's edge; these tests try
# every one-character edit of valid examples, with every ASCII character
# and the hostile ones.

EDIT_CHARS = [chr(c) for c in range(128)] + list(HOSTILE)


def neighbours(template: str):
    yield template
    for at in range(len(template) + 1):
        yield template[:at] + template[at + 1 :]
        for c in EDIT_CHARS:
            yield template[:at] + c + template[at:]
            yield template[:at] + c + template[at + 1 :]


@pytest.mark.parametrize("template", ["https://ab.example:8443/", "HTTP://a-b_c~d.e:00443", "http://[::1]:80", "https://[fe80::1%2]/",
                                      "https://1.2.3.4", "http://localhost:65535"])
def test_canonical_origin_agrees_on_every_near_miss(template):
    for text in neighbours(template):
        assert_origin_agrees(text)


@pytest.mark.parametrize("template", ["ekiaedepebiljeejbccahljdhmdiocpb", "chrome-extension://ekiaedepebiljeejbccahljdhmdiocpb/",
                                      "cisbridge@cisbridge.org", "{0123abcd-ABCD-4567-89ef-0123456789AB}", "a+b@c-d", "x" * 80 + "@" + "y" * 80])
def test_canonical_extension_id_agrees_on_every_near_miss(template):
    for text in neighbours(template):
        assert_extension_id_agrees(text)
        plain = "-" if text.endswith("\n") else text
        assert caller_from_argv(["/m.json", text]) == spec_caller_from_argv(["/m.json", plain])
        assert caller_from_argv([text]) == spec_caller_from_argv([plain])


# ------------------------------------------------------- the differences, named

CHROME_ID = "ekiaedepebiljeejbccahljdhmdiocpb"


@pytest.mark.parametrize("text", [f"{CHROME_ID}\n", f"chrome-extension://{CHROME_ID}/\n", f"chrome-extension://{CHROME_ID}\n",
                                  "cisbridge@cisbridge.org\n", "{" + "a" * 36 + "}\n"])
def test_a_trailing_newline_is_refused_though_the_old_dollar_accepted_it(text):
    assert outcome(spec_canonical_extension_id, text)[0] == "ok"  # the old behaviour
    with pytest.raises(OriginError):
        canonical_extension_id(text)
    assert caller_from_argv([text]) is None
    assert caller_from_argv(["/manifest.json", text]) is None


def test_a_host_that_only_lower_cases_to_ascii_is_refused():
    assert spec_canonical_origin("https://\u212aey.example") == "https://key.example"  # the old behaviour
    with pytest.raises(OriginError, match="not a host name"):
        canonical_origin("https://\u212aey.example")


@pytest.mark.parametrize("text, canonical", [
    ("https://EHR.example.nhs.uk:443/", "https://ehr.example.nhs.uk"),
    ("http://127.0.0.1:8080", "http://127.0.0.1:8080"),
    ("http://[::1]:9000", "http://[::1]:9000"),
    ("HTTPS://[FE80::1]", "https://[fe80::1]"),
    ("http://localhost:80/", "http://localhost"),
])
def test_origins_are_canonical(text, canonical):
    assert canonical_origin(text) == canonical


@pytest.mark.parametrize("text", ["", "null", "https://", "https://a.example/x", "https://u@a.example", "https://*.example",
                                  "https://a.example:65536", "https://a.example:\u00b2", "https://.a", "ftp://a.example",
                                  "https:/a.example", "https://[::g]"])
def test_not_origins_are_refused(text):
    with pytest.raises(OriginError):
        canonical_origin(text)


def test_callers_as_browsers_pass_them():
    assert caller_from_argv([f"chrome-extension://{CHROME_ID}/"]) == CHROME_ID
    assert caller_from_argv([f"chrome-extension://{CHROME_ID}/", "--parent-window=1234"]) == CHROME_ID
    assert caller_from_argv(["/home/u/.mozilla/native-messaging-hosts/org.cisbridge.host.json", "cisbridge@cisbridge.org"]) == "cisbridge@cisbridge.org"
    assert caller_from_argv(["cisbridge@cisbridge.org"]) is None
    assert caller_from_argv([]) is None
