"""Who may call: page origins and the calling extension.

Origins are compared in canonical form (lower-case scheme and host, default
port dropped), exact scheme/host/port match, no wildcards.  Only secure
contexts: https, or http on a loopback host that the allowlist names.
"""

from __future__ import annotations

TYPE_CHECKING = False  # (not typing's: this module is imported before ready, typing is not)
if TYPE_CHECKING:  # protocol imports msgspec: not needed to read the config before ready
    from cisbridge.protocol import CisError

# Parsed with string methods, not ``re``: this runs before the host's
# ``ready``, and ``re`` (with the ``enum`` it imports) is ~5 ms of a cold
# start.  tests/test_origins.py holds the regular expressions these checks
# replaced, as their specification, and compares the two on random input.
_DEFAULT_PORTS = {"https": 443, "http": 80}
_LETTERS = "ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz"
_DIGITS = "0123456789"
_SCHEME_CHARS = _LETTERS + _DIGITS + "+.-"
_HOST_CHARS = "abcdefghijklmnopqrstuvwxyz" + _DIGITS + "._~-"
_CHROME_ID_CHARS = "abcdefghijklmnop"
_CHROME_PREFIX = "chrome-extension://"
# Firefox add-on ids: an email-like id or a {GUID}.
_FIREFOX_LOCAL_CHARS = _LETTERS + _DIGITS + "._+-"
_FIREFOX_DOMAIN_CHARS = _LETTERS + _DIGITS + "._-"
_GUID_CHARS = _DIGITS + "ABCDEFabcdef-"


def _only(text: str, chars: str) -> bool:
    """Whether every character of text is one of chars (true for "")."""
    return not text.strip(chars)


class OriginError(ValueError):
    """Why a string is not an acceptable origin."""


def is_loopback(host: str) -> bool:
    if host == "localhost":
        return True
    import ipaddress

    try:
        return ipaddress.ip_address(host.strip("[]")).is_loopback
    except ValueError:
        return False


def canonical_origin(text: str) -> str:
    """The canonical form of an origin, or OriginError saying why it is not one.

    Parsed by hand rather than with urllib.parse: an origin is a small thing,
    and this runs before the host's ``ready`` frame, where every import counts.
    """
    if not isinstance(text, str) or not text:
        raise OriginError("an origin is a string like https://ehr.example.nhs.uk")
    if text == "null":
        raise OriginError("opaque origin 'null' (sandboxed frame or file) is never allowed")
    # scheme "://" authority rest: the scheme ends at the first ":", the
    # authority at the first "/", "?" or "#" after "://".
    colon = text.find(":")
    scheme = text[:colon] if colon > 0 else ""
    if not (scheme and scheme[0] in _LETTERS and _only(scheme, _SCHEME_CHARS) and text.startswith("//", colon + 1)):
        raise OriginError("not an origin: scheme://host[:port] expected")
    start = colon + 3
    end = len(text)
    for stop in "/?#":
        found = text.find(stop, start, end)
        if found != -1:
            end = found
    scheme, authority, rest = scheme.lower(), text[start:end], text[end:]
    if scheme not in _DEFAULT_PORTS:
        raise OriginError(f"scheme {scheme!r} is not allowed: use https")
    if "@" in authority:
        raise OriginError("an origin has no user name or password")
    if rest not in ("", "/"):
        raise OriginError("an origin has no path, query or fragment: scheme://host[:port] only")
    if authority.startswith("["):  # IPv6 literal
        end = authority.find("]")
        host, port_part = authority[: end + 1].lower(), authority[end + 1 :]
        import ipaddress

        try:
            ipaddress.IPv6Address(host[1:-1])
        except ValueError:
            raise OriginError(f"not an IPv6 address: {host}") from None
    else:
        written, colon, port_part = authority.partition(":")
        host, port_part = written.lower(), colon + port_part
        if not host:
            raise OriginError("an origin needs a host")
        if "*" in host:
            raise OriginError("wildcards are not supported: list each origin exactly")
        # ASCII before lower(): "\u212a".lower() is "k" (the Kelvin sign)
        if not (written.isascii() and host[0] != "." and _only(host, _HOST_CHARS)):
            raise OriginError(f"not a host name: {host!r}")
    port = None
    if port_part:
        digits = port_part[1:]
        if not (port_part.startswith(":") and 1 <= len(digits) <= 5 and digits.isascii() and digits.isdigit()
                and int(digits) <= 65535):
            raise OriginError(f"not a port: {digits!r}")
        port = int(digits)
    if port is None or port == _DEFAULT_PORTS[scheme]:
        return f"{scheme}://{host}"
    return f"{scheme}://{host}:{port}"


def is_secure(origin: str) -> bool:
    """https, or http on a loopback host (origin must be canonical)."""
    scheme, _, rest = origin.partition("://")
    if scheme == "https":
        return True
    host = rest.rsplit(":", 1)[0] if not rest.endswith("]") else rest
    return scheme == "http" and is_loopback(host)


class OriginPolicy:
    """Answers "may this page origin use the host?" — fast, with a small cache."""

    def __init__(self, allowed: list[str]):
        self.allowed = frozenset(allowed)
        self._cache: dict[str, CisError | str] = {}

    def check(self, origin: str) -> str:
        """The canonical origin when allowed; raises CisError otherwise."""
        verdict = self._cache.get(origin)
        if verdict is None:
            verdict = self._judge(origin)
            if len(self._cache) < 512:
                self._cache[origin] = verdict
        if isinstance(verdict, str):
            return verdict
        raise verdict

    def _judge(self, origin: str) -> CisError | str:
        from cisbridge.protocol import CisError, ErrorCode

        if origin == "null":
            return CisError(
                ErrorCode.ORIGIN_NOT_ALLOWED,
                "Pages with an opaque origin (sandboxed frames, files) cannot use the smartcard.",
                {"origin": "null"},
            )
        try:
            canonical = canonical_origin(origin)
        except OriginError as exc:
            return CisError(ErrorCode.INVALID_REQUEST, f"bad origin: {exc}")
        if not is_secure(canonical):
            return CisError(
                ErrorCode.INSECURE_CONTEXT,
                "Smartcard access needs a secure page (https). Plain http is allowed only "
                "on this computer (localhost) and only when listed in allowed_origins.",
                {"origin": canonical},
            )
        if canonical not in self.allowed:
            return CisError(
                ErrorCode.ORIGIN_NOT_ALLOWED,
                f"{canonical} is not allowed to use the smartcard. If it should be, ask your "
                "IT team to add it to allowed_origins in the cisbridge configuration.",
                {"origin": canonical},
            )
        return canonical


def canonical_extension_id(text: str) -> str:
    """A configured extension id in canonical form, or OriginError."""
    if isinstance(text, str):
        chrome = _chrome_origin_id(text)
        if chrome is not None:
            return chrome
        if _is_chrome_id(text) or _is_firefox_id(text):
            return text
    raise OriginError(
        "not an extension id: use a Chromium id (32 letters a-p), chrome-extension://ID/, "
        "or a Firefox add-on id such as cisbridge@cisbridge.org"
    )


def caller_from_argv(argv: list[str]) -> str | None:
    """The extension that launched the host, from what the browser put in argv.

    Chromium family: ``chrome-extension://ID/`` (Windows adds ``--parent-window=N``).
    Firefox: the manifest path, then the add-on id.
    """
    args = [a for a in argv if not a.startswith("--parent-window=")]
    for arg in args:
        chrome = _chrome_origin_id(arg)
        if chrome is not None:
            return chrome
    if len(args) == 2 and _is_firefox_id(args[1]):
        return args[1]
    return None


def _is_chrome_id(text: str) -> bool:
    return len(text) == 32 and _only(text, _CHROME_ID_CHARS)


def _chrome_origin_id(text: str) -> str | None:
    """The id in ``chrome-extension://ID`` or ``chrome-extension://ID/``."""
    if not text.startswith(_CHROME_PREFIX):
        return None
    ext = text[len(_CHROME_PREFIX) :]
    if ext.endswith("/"):
        ext = ext[:-1]
    return ext if _is_chrome_id(ext) else None


def _is_firefox_id(text: str) -> bool:
    if len(text) == 38 and text[0] == "{" and text[-1] == "}" and _only(text[1:-1], _GUID_CHARS):
        return True
    local, at, domain = text.partition("@")
    return (bool(at) and 1 <= len(local) <= 80 and 1 <= len(domain) <= 80
            and _only(local, _FIREFOX_LOCAL_CHARS) and _only(domain, _FIREFOX_DOMAIN_CHARS))
