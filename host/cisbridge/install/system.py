"""The machine the installer writes to: platform, scope, paths and registry.

Paths are kept *logical* — what the browser will see, e.g. ``/etc/opt/chrome/…``
or ``C:\\Program Files\\cisbridge\\…`` — and mapped to a real path only when a
file is read or written.  With ``root`` set (tests, packaging into a staging
tree) every logical path lands under that directory instead, so the macOS and
Windows layouts can be written and checked on Linux.

The Windows registry is reached through :class:`Registry`: ``winreg`` on
Windows, and a small JSON-backed registry under the fake root elsewhere that
records every write (the one stand-in here: there is no Windows to test on).
The installer writes default values only; doctor also reads the named values
of a key (browser policies under ``SOFTWARE\\Policies``).
"""

from __future__ import annotations

import getpass
import json
import os
import sys
from dataclasses import dataclass, field
from pathlib import Path, PurePath, PurePosixPath, PureWindowsPath
from typing import Mapping, Protocol

APP = "cisbridge"
PLATFORMS = ("linux", "darwin", "win32")
SCOPES = ("user", "system")


def current_platform() -> str:
    if sys.platform.startswith("win"):
        return "win32"
    if sys.platform == "darwin":
        return "darwin"
    return "linux"


class Registry(Protocol):
    """The part of the Windows registry cisbridge uses: default values of keys
    (install), and every value of one key (doctor reads browser policies)."""

    def get(self, hive: str, key: str) -> str | None: ...

    def values(self, hive: str, key: str) -> dict[str, str | int] | None:
        """The key's values by name ("" is the default value): REG_SZ and
        REG_EXPAND_SZ as str, REG_DWORD as int; None when the key does not exist."""
        ...

    def set(self, hive: str, key: str, value: str) -> None: ...

    def delete(self, hive: str, key: str) -> None: ...


class WinRegistry:
    """The real registry (Windows only).  HKLM is written in the 64-bit view;
    Chrome reads both views, 64-bit Firefox reads this one."""

    def __init__(self) -> None:
        import winreg  # noqa: F401 - fail early off Windows

    def _open(self, hive: str, key: str, write: bool):
        import winreg

        root = {"HKCU": winreg.HKEY_CURRENT_USER, "HKLM": winreg.HKEY_LOCAL_MACHINE}[hive]
        view = winreg.KEY_WOW64_64KEY if hive == "HKLM" else 0
        if write:
            return winreg.CreateKeyEx(root, key, 0, winreg.KEY_SET_VALUE | view)
        return winreg.OpenKey(root, key, 0, winreg.KEY_QUERY_VALUE | view)

    def get(self, hive: str, key: str) -> str | None:
        import winreg

        try:
            with self._open(hive, key, write=False) as handle:
                value, _kind = winreg.QueryValueEx(handle, "")
                return str(value)
        except OSError:
            return None

    def values(self, hive: str, key: str) -> dict[str, str | int] | None:
        import winreg

        try:
            handle = self._open(hive, key, write=False)
        except OSError:
            return None
        out: dict[str, str | int] = {}
        with handle:
            index = 0
            while True:
                try:
                    name, value, kind = winreg.EnumValue(handle, index)
                except OSError:  # no more values
                    break
                index += 1
                if kind == winreg.REG_DWORD:
                    out[name] = int(value)
                elif kind in (winreg.REG_SZ, winreg.REG_EXPAND_SZ):
                    out[name] = str(value)
                # other types: browsers ignore them for policies, so do we
        return out

    def set(self, hive: str, key: str, value: str) -> None:
        import winreg

        with self._open(hive, key, write=True) as handle:
            winreg.SetValueEx(handle, "", 0, winreg.REG_SZ, value)

    def delete(self, hive: str, key: str) -> None:
        import winreg

        root = {"HKCU": winreg.HKEY_CURRENT_USER, "HKLM": winreg.HKEY_LOCAL_MACHINE}[hive]
        view = winreg.KEY_WOW64_64KEY if hive == "HKLM" else 0
        try:
            winreg.DeleteKeyEx(root, key, view, 0)
        except FileNotFoundError:
            pass


class FileRegistry:
    """A registry kept in ``<root>/registry.json``, for installs under a fake
    root: persistent across commands (install, then doctor, then uninstall),
    and ``writes`` lists every change this object made, in order.

    Each entry is ``"HIVE\\key": value``: a string is the key's default value
    (all the installer writes); an object holds named values, ``""`` being the
    default, strings standing for REG_SZ and integers for REG_DWORD — e.g.
    ``"HKLM\\SOFTWARE\\Policies\\Google\\Chrome": {"NativeMessagingUserLevelHosts": 0}``."""

    def __init__(self, path: Path):
        self.path = path
        self.writes: list[tuple[str, str, str, str | None]] = []

    def _load(self) -> dict[str, str | dict[str, str | int]]:
        try:
            return json.loads(self.path.read_text(encoding="utf-8"))
        except FileNotFoundError:
            return {}

    def _save(self, data: dict[str, str | dict[str, str | int]]) -> None:
        self.path.parent.mkdir(parents=True, exist_ok=True)
        self.path.write_text(json.dumps(data, indent=2, sort_keys=True) + "\n", encoding="utf-8")

    @staticmethod
    def _name(hive: str, key: str) -> str:
        return f"{hive}\\{key}"

    def _find(self, data: dict, hive: str, key: str) -> str | None:
        wanted = self._name(hive, key).lower()  # registry keys are case-insensitive
        return next((k for k in data if k.lower() == wanted), None)

    def get(self, hive: str, key: str) -> str | None:
        found = self.values(hive, key)
        value = found.get("") if found else None
        return value if isinstance(value, str) else None

    def values(self, hive: str, key: str) -> dict[str, str | int] | None:
        data = self._load()
        found = self._find(data, hive, key)
        if not found:
            return None
        entry = data[found]
        return dict(entry) if isinstance(entry, dict) else {"": entry}

    def set(self, hive: str, key: str, value: str) -> None:
        data = self._load()
        found = self._find(data, hive, key) or self._name(hive, key)
        if isinstance(data.get(found), dict):
            data[found][""] = value
        else:
            data[found] = value
        self._save(data)
        self.writes.append(("set", hive, key, value))

    def delete(self, hive: str, key: str) -> None:
        data = self._load()
        found = self._find(data, hive, key)
        if found:
            del data[found]
            self._save(data)
        self.writes.append(("delete", hive, key, None))


@dataclass
class System:
    platform: str
    scope: str
    root: Path | None = None
    env: Mapping[str, str] = field(default_factory=lambda: dict(os.environ))
    registry: Registry | None = None

    def __post_init__(self) -> None:
        if self.platform not in PLATFORMS:
            raise ValueError(f"unknown platform {self.platform!r}")
        if self.root is None and self.platform != current_platform():
            raise ValueError(f"--platform {self.platform} needs --root (this machine is {current_platform()})")
        if self.root is not None:
            self.root = Path(self.root).absolute()
        if self.platform == "win32" and self.registry is None:
            self.registry = FileRegistry(self.root / "registry.json") if self.root else WinRegistry()

    @classmethod
    def from_args(cls, args, scope: str | None = None) -> System:
        root = Path(args.root) if getattr(args, "root", None) else None
        platform = getattr(args, "platform", None) or current_platform()
        return cls(platform=platform, scope=scope or getattr(args, "scope", None) or "user", root=root)

    # ------------------------------------------------------------ paths

    @property
    def windows(self) -> bool:
        return self.platform == "win32"

    @property
    def fake(self) -> bool:
        return self.root is not None

    def pure(self, *parts: str) -> PurePath:
        return (PureWindowsPath if self.windows else PurePosixPath)(*parts)

    def real(self, logical: str | PurePath) -> Path:
        """Where a logical path is on this machine's disk."""
        path = self.pure(str(logical))
        if self.root is None:
            return Path(str(path))
        if self.windows:
            drive = path.drive.rstrip(":") or "C"
            return self.root.joinpath(drive, *path.parts[1:])
        return self.root.joinpath(*path.parts[1:])

    def user_name(self) -> str:
        try:
            return getpass.getuser()
        except Exception:  # noqa: BLE001 - no user database entry (containers)
            return "user"

    def _env(self, name: str) -> str | None:
        # A fake root has its own home: the real machine's variables do not apply.
        return None if self.fake else (self.env.get(name) or None)

    def home(self) -> PurePath:
        named = self._env("USERPROFILE" if self.windows else "HOME")
        if named:
            return self.pure(named)
        user = self.user_name()
        return {
            "linux": self.pure("/home", user),
            "darwin": self.pure("/Users", user),
            "win32": self.pure("C:\\Users", user),
        }[self.platform]

    def xdg(self, name: str, default: str) -> PurePath:
        value = self._env(name)
        return self.pure(value) if value and value.startswith("/") else self.home() / default

    def local_appdata(self) -> PurePath:
        named = self._env("LOCALAPPDATA")
        return self.pure(named) if named else self.home() / "AppData" / "Local"

    def program_files(self) -> PurePath:
        named = self._env("ProgramFiles")
        return self.pure(named) if named else self.pure("C:\\Program Files")

    def program_data(self) -> PurePath:
        named = self._env("ProgramData")
        return self.pure(named) if named else self.pure("C:\\ProgramData")

    def hive(self) -> str:
        return "HKLM" if self.scope == "system" else "HKCU"

    def install_dir(self) -> PurePath:
        """Where the launcher (and, on Windows, the manifests) go."""
        if self.scope == "system":
            return {
                "linux": self.pure("/usr/local/lib/cisbridge"),
                "darwin": self.pure("/Library/Application Support/cisbridge"),
                "win32": self.program_files() / "cisbridge",
            }[self.platform]
        return {
            "linux": self.xdg("XDG_DATA_HOME", ".local/share") / APP,
            "darwin": self.home() / "Library" / "Application Support" / APP,
            "win32": self.local_appdata() / APP,
        }[self.platform]

    def state_file(self) -> PurePath:
        """The record of what install wrote (platformdirs' user_state_dir for
        a real user install; the system's equivalent for --system)."""
        if self.scope == "system":
            base = {
                "linux": self.pure("/var/lib/cisbridge"),
                "darwin": self.pure("/Library/Application Support/cisbridge"),
                "win32": self.program_data() / "cisbridge",
            }[self.platform]
        elif not self.fake:
            import platformdirs

            base = self.pure(platformdirs.user_state_dir(APP, appauthor=False))
        else:
            base = {
                "linux": self.home() / ".local" / "state" / APP,
                "darwin": self.home() / "Library" / "Application Support" / APP,
                "win32": self.local_appdata() / APP,
            }[self.platform]
        return base / "install-state.json"

    def launcher(self) -> PurePath:
        return self.install_dir() / ("cisbridge-host.bat" if self.windows else "cisbridge-host")
