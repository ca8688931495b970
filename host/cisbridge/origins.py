"""Who may call: page origins and the calling extension.

Origins are compared in canonical form (lower-case scheme and host, default
port dropped), exact scheme/host/port match, no wildcards.  Only secure
contexts: https, or http on a loopback host that the allowlist names.
"""

from __future__ import annotations

import re
TYPE_CHECKING = False  # (not typing's: this module is imported before ready, typing is not)
if TYPE_CHECKING:  # protocol imports msgspec: not needed to read the config before ready
    from cisbridge.protocol import CisError

_DEFAULT_PORTS = {"https": 443, "http": 80}
_CHROME_ID = re.compile(r"^[a-p]{32}$")
_CHROME_ORIGIN = re.compile(r"^chrome-extension://([a-p]{32})/?$")
# Firefox add-on ids: an email-like id or a {GUID}.
_FIREFOX_ID = re.compile(r"^(?:[A-Za-z0-9._+-]{1,80}@[A-Za-z0-9._-]{1,80}|\{[0-9A-Fa-f-]{36}\})$")


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


_ORIGIN = re.compile(r"([A-Za-z][A-Za-z0-9+.-]*)://([^/?#]*)(.*)", re.S)
_HOST = re.compile(r"[a-z0-9_~-][a-z0-9._~-]*")
_PORT = re.compile(r"[0-9]{1,5}")


def canonical_origin(text: str) -> str:
    """The canonical form of an origin, or OriginError saying why it is not one.

    Parsed by hand rather than with urllib.parse: an origin is a small thing,
    and this runs before the host's ``ready`` frame, where every import counts.
    """
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
        import ipaddress

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
    m = _CHROME_ORIGIN.match(text)
    if m:
        return m.group(1)
    if _CHROME_ID.match(text) or _FIREFOX_ID.match(text):
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
        m = _CHROME_ORIGIN.match(arg)
        if m:
            return m.group(1)
    if len(args) == 2 and _FIREFOX_ID.match(args[1]):
        return args[1]
    return None
