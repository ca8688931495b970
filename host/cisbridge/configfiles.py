"""Finding, reading and merging the configuration files — without msgspec.

Split from ``config`` (the schema) so the host can read its files and write
``ready`` before it pays for importing msgspec: the browser waits for that
frame.  Validation against the schema happens right after (``config.validate``);
a file that fails it still makes every request answer with the file and key.

Merge rule (CONTRACT §5): what the administrator's system config sets, the
user config cannot widen — ``allowed_origins`` / ``allowed_extensions`` may
only be narrowed, and any other key the system config sets is fixed, except
``[logging] level``.
"""

from __future__ import annotations

import os

from cisbridge import DEV_CHROME_EXTENSION_ID, FIREFOX_EXTENSION_ID

TYPE_CHECKING = False  # (not typing's: imported before ready)
if TYPE_CHECKING:
    from cisbridge.configcache import ParseCache

APP = "cisbridge"
FILENAME = "config.toml"
DEFAULT_EXTENSIONS = (DEV_CHROME_EXTENSION_ID, FIREFOX_EXTENSION_ID)


class ConfigError(Exception):
    """A configuration file the host cannot use; names the file and the key."""

    def __init__(self, file: str | None, key: str | None, problem: str):
        self.file, self.key, self.problem = file, key, problem
        where = file or "configuration"
        if key:
            where += f", key {key}"
        super().__init__(f"{where}: {problem}")

    @property
    def detail(self) -> dict[str, object]:
        return {"file": self.file, "key": self.key, "problem": self.problem}


class Raw:
    """The files as read and merged, not yet checked against the schema."""

    def __init__(self) -> None:
        #: (file, contents) in merge order: system, then user
        self.layers: list[tuple[str, dict[str, object]]] = []
        self.merged: dict[str, object] = {}
        #: things a person should know (ignored user overrides); shown by doctor
        self.warnings: list[str] = []

    @property
    def files(self) -> list[str]:
        return [file for file, _ in self.layers]


def paths(env: dict[str, str] | os._Environ = os.environ) -> list[str]:
    """The files that would be read, existing or not, in merge order."""
    named = env.get("CISBRIDGE_CONFIG")
    if named:
        return [named]
    from cisbridge import dirs

    found = [os.path.join(dirs.site_config_dir(), FILENAME)]
    try:
        found.append(os.path.join(dirs.user_config_dir(), FILENAME))
    except RuntimeError:  # no home directory (a user without one): the administrator's file only
        pass
    return found


def read(env: dict[str, str] | os._Environ = os.environ, cache: ParseCache | None = None) -> Raw:
    """Read and merge the files; raises ConfigError for one that is not TOML.

    With a cache (the host's start), a file whose exact bytes it knows is not
    parsed again."""
    raw = Raw()
    named = bool(env.get("CISBRIDGE_CONFIG"))
    files = paths(env)
    if not named and len(files) == 1:
        raw.warnings.append("no home directory: only the system configuration is read (set HOME or XDG_CONFIG_HOME)")
    for path in files:
        if os.path.isfile(path):
            raw.layers.append((path, _read(path, cache)))
        elif named:
            raise ConfigError(path, None, "CISBRIDGE_CONFIG names a file that does not exist")
    if raw.layers:
        raw.merged = raw.layers[0][1]
        if len(raw.layers) == 2:
            raw.merged = _merge(raw.merged, raw.layers[1][1], raw.layers[1][0], raw.warnings)
    return raw


def ready_view(raw: Raw, caller: str | None) -> tuple[str, list[str]]:
    """What ``ready`` announces: the agent kind, and the allowed origins when the
    caller is an allowed extension and every origin entry is acceptable."""
    from cisbridge.origins import OriginError, canonical_extension_id, canonical_origin, is_secure

    merged = raw.merged
    agent = merged.get("agent")
    kind = agent.get("kind", "none") if isinstance(agent, dict) else "none"
    kind = kind if isinstance(kind, str) else "none"
    try:
        extensions = {canonical_extension_id(e) for e in merged.get("allowed_extensions", DEFAULT_EXTENSIONS)}
        if caller not in extensions:
            return kind, []
        origins = [canonical_origin(o) for o in merged.get("allowed_origins", [])]
    except (OriginError, TypeError, AttributeError):
        return kind, []
    if not all(is_secure(o) for o in origins):
        return kind, []
    return kind, list(dict.fromkeys(origins))


def _read(path: str, cache: ParseCache | None = None) -> dict[str, object]:
    try:
        with open(path, "rb") as fh:
            data = fh.read()
    except OSError as exc:
        raise ConfigError(path, None, f"cannot be read: {exc.strerror}") from None
    if cache is not None:
        parsed = cache.get(path, data)
        if parsed is not None:
            return parsed
    import tomllib

    try:
        parsed = tomllib.loads(data.decode())
    except UnicodeDecodeError as exc:
        raise ConfigError(path, None, f"not valid TOML: not UTF-8 (byte {exc.start} cannot be decoded)") from None
    except tomllib.TOMLDecodeError as exc:
        raise ConfigError(path, None, f"not valid TOML: {exc}") from None
    except RecursionError:
        raise ConfigError(path, None, "cannot be read: arrays or tables nested too deeply") from None
    if cache is not None:
        cache.put(path, data, parsed)
    return parsed


_NARROWABLE = ("allowed_origins", "allowed_extensions")
_USER_MAY_CHANGE = {("logging", "level")}


def _merge(system: dict[str, object], user: dict[str, object], user_file: str, warnings: list[str]) -> dict[str, object]:
    from cisbridge.origins import canonical_extension_id, canonical_origin

    merged = {k: (dict(v) if isinstance(v, dict) else v) for k, v in system.items()}
    for key, value in user.items():
        if key in _NARROWABLE:
            if key not in system:
                merged[key] = value
                continue
            norm = _lenient(canonical_origin if key == "allowed_origins" else canonical_extension_id)
            admin = {norm(v) for v in _list(system[key])}
            kept = [v for v in _list(value) if norm(v) in admin]
            for dropped in (v for v in _list(value) if norm(v) not in admin):
                warnings.append(f"{user_file}: {key} entry {dropped!r} ignored: the system configuration does not allow it")
            merged[key] = kept
        elif isinstance(value, dict):
            section = merged.setdefault(key, {})
            if not isinstance(section, dict):
                merged[key] = value
                continue
            for sub, subvalue in value.items():
                if sub in section and (key, sub) not in _USER_MAY_CHANGE and section[sub] != subvalue:
                    warnings.append(f"{user_file}: {key}.{sub} ignored: set by the system configuration")
                else:
                    section[sub] = subvalue
        else:
            merged[key] = value
    return merged


def _list(value: object) -> list[object]:
    return value if isinstance(value, list) else []


def _lenient(norm):
    """Normalise for comparison; a bad entry compares as itself (validation reports it)."""

    def apply(value: object) -> object:
        try:
            return norm(value)
        except Exception:
            return ("invalid", repr(value))

    return apply
