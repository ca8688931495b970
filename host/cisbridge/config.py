"""Configuration (CONTRACT.md §5): the schema, and loading = read + validate.

``configfiles`` finds, reads and merges the TOML files (system config, then
user config; ``CISBRIDGE_CONFIG`` names one file instead); this module checks
the result against the schema, a tree of msgspec Structs, so unknown keys and
wrong types are refused with the file and key named.
"""

from __future__ import annotations

import os
import re
from pathlib import Path
from typing import Annotated, Any, Literal

import msgspec
from msgspec import Meta, Struct

from cisbridge.configfiles import DEFAULT_EXTENSIONS, ConfigError, Raw, read
from cisbridge.origins import OriginError, canonical_extension_id, canonical_origin, is_secure

__all__ = ["Config", "ConfigError", "Loaded", "load", "validate", "parse", "config_files", "user_config_file"]


class _Section(Struct, forbid_unknown_fields=True, kw_only=True):
    pass


class AgentConfig(_Section):
    kind: Literal["none", "gas", "ticketapi"] = "none"
    #: GAS base URL (gas agent), e.g. https://gas.nis1.national.ncrs.nhs.uk
    url: str | None = None
    #: PEM file of the CA(s) that issue GAS's TLS certificate (gas agent)
    ca_file: str | None = None
    #: path of the NHS Ticket API library (ticketapi agent)
    library: str | None = None
    #: seconds a single agent call (one HTTP exchange) may take
    timeout: Annotated[float, Meta(gt=0, le=300)] = 15.0


class Pkcs11Config(_Section):
    #: PKCS#11 module path; None = the platform's OpenSC module
    module: str | None = None
    token_label: str | None = None
    #: keep a logged-in card session for the next signing batch
    reuse_login: bool = False


class LoggingConfig(_Section):
    level: Literal["debug", "info", "warning", "error"] = "info"


class HostConfig(_Section):
    #: browser -> host frames larger than this are discarded and refused
    max_request_bytes: Annotated[int, Meta(ge=4096, le=64 * 1024 * 1024)] = 4 * 1024 * 1024
    #: requests in flight at once; more get BUSY
    max_outstanding: Annotated[int, Meta(ge=1, le=4096)] = 64
    #: seconds a prompt waits for the person before the request ends with TIMEOUT
    prompt_timeout: Annotated[float, Meta(gt=0, le=3600)] = 300.0


def _default_extensions() -> list[str]:
    return list(DEFAULT_EXTENSIONS)


class Config(_Section):
    allowed_origins: list[str] = []
    allowed_extensions: list[str] = msgspec.field(default_factory=_default_extensions)
    agent: AgentConfig = msgspec.field(default_factory=AgentConfig)
    pkcs11: Pkcs11Config = msgspec.field(default_factory=Pkcs11Config)
    logging: LoggingConfig = msgspec.field(default_factory=LoggingConfig)
    host: HostConfig = msgspec.field(default_factory=HostConfig)


class Loaded:
    """The merged configuration and how it came about.

    (A plain class: dataclasses would import inspect before ``ready``.)
    """

    def __init__(self, config: Config, files: list[str] | None = None, warnings: list[str] | None = None):
        self.config = config
        #: the files read, in order
        self.files = files or []
        #: things a person should know (ignored user overrides); shown by doctor
        self.warnings = warnings or []


def config_files(env: dict[str, str] | os._Environ = os.environ) -> list[Path]:
    """The files that would be read, existing or not, in merge order."""
    from cisbridge.configfiles import paths

    return [Path(p) for p in paths(env)]


def user_config_file() -> Path:
    return config_files()[-1]


def load(env: dict[str, str] | os._Environ = os.environ) -> Loaded:
    """Read, merge and validate the configuration; raises ConfigError."""
    return validate(read(env))


def validate(raw: Raw) -> Loaded:
    """Check each file against the schema (so errors name the right file), then the merge."""
    for file, layer in raw.layers:
        _check(layer, file)
    config = _to_config(raw.merged, raw.files[-1] if raw.files else None)
    return Loaded(config, raw.files, raw.warnings)


def parse(text: str, file: str = "<string>") -> Config:
    """Validate one TOML document on its own (used by tests and doctor)."""
    import tomllib

    try:
        raw = tomllib.loads(text)
    except tomllib.TOMLDecodeError as exc:
        raise ConfigError(file, None, f"not valid TOML: {exc}") from None
    _check(raw, file)
    return _to_config(raw, file)


_PATH = re.compile(r" - at `\$((?:\.[A-Za-z_0-9]+|\[\d+\])*)`$")
_UNKNOWN = re.compile(r"Object contains unknown field `([^`]+)`")


def _check(raw: dict[str, Any], file: str) -> Config:
    """Validate one file's contents against the schema; errors name the key."""
    try:
        config = msgspec.convert(raw, Config)
    except msgspec.ValidationError as exc:
        text = str(exc)
        m = _PATH.search(text)
        key = m.group(1).lstrip(".") if m else ""
        problem = text[: m.start()] if m else text
        u = _UNKNOWN.match(problem)
        if u:
            key = f"{key}.{u.group(1)}" if key else u.group(1)
            problem = "unknown key (check the spelling; see docs/configuration.md)"
        raise ConfigError(file, key or None, problem) from None
    for i, origin in enumerate(config.allowed_origins):
        key = f"allowed_origins[{i}]"
        try:
            canonical = canonical_origin(origin)
        except OriginError as exc:
            raise ConfigError(file, key, f"{origin!r}: {exc}") from None
        if not is_secure(canonical):
            raise ConfigError(
                file, key, f"{origin!r}: http is allowed only on a loopback host; use https"
            )
    for i, ext in enumerate(config.allowed_extensions):
        try:
            canonical_extension_id(ext)
        except OriginError as exc:
            raise ConfigError(file, f"allowed_extensions[{i}]", f"{ext!r}: {exc}") from None
    if config.agent.kind == "gas" and config.agent.url and not config.agent.url.startswith("https://"):
        host = config.agent.url.split("://", 1)[-1].split("/", 1)[0].rsplit(":", 1)[0]
        from cisbridge.origins import is_loopback

        if not (config.agent.url.startswith("http://") and is_loopback(host)):
            raise ConfigError(file, "agent.url", "GAS is reached over https (http only on loopback, for tests)")
    return config


def _to_config(raw: dict[str, Any], file: str | None) -> Config:
    config = _check(raw, file or "<defaults>")
    config.allowed_origins = list(dict.fromkeys(canonical_origin(o) for o in config.allowed_origins))
    config.allowed_extensions = list(dict.fromkeys(canonical_extension_id(e) for e in config.allowed_extensions))
    return config


