"""Writing and removing the launcher, the host manifests and the registry keys.

Everything written is recorded in a state file (:meth:`System.state_file`),
per location with the browsers it was written for, so ``uninstall`` removes
exactly that: a location shared by several browsers (Brave and Vivaldi also
read Chrome's system directory) goes only when the last of them is removed.
"""

from __future__ import annotations

import json
import os
import shlex
import stat
import sys
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from cisbridge import DEV_CHROME_EXTENSION_ID, FIREFOX_EXTENSION_ID
from cisbridge.host import LAUNCH
from cisbridge.install import locations as loc
from cisbridge.install import manifests
from cisbridge.install.system import System

STATE_VERSION = 1
#: pseudo-browser under which ``--profile-dir`` manifests are recorded
PROFILE = "profile"


# ------------------------------------------------------------------ launcher

#: The interpreter's options in a launcher's command.  ``-I``, isolated mode:
#: PYTHON* environment variables and the user's site-packages are ignored,
#: and the current directory is not put on ``sys.path`` (with ``-c`` it would
#: come first: a ``struct.py`` in the browser's working directory would be
#: imported into the host).  cisbridge must be installed in that Python.
LAUNCH_OPTIONS: tuple[str, ...] = ("-I",)


def launcher_argv(python: str) -> list[str]:
    """The command a launcher runs, before the browser's arguments."""
    return [python, *LAUNCH_OPTIONS, "-c", LAUNCH]


def launcher_text(system: System, python: str) -> str:
    """The script the manifests point at: runs the host (``python -I -c``
    with :data:`cisbridge.host.LAUNCH`, the quickest start) with the
    browser's arguments.  Browsers cannot pass arguments of their own, and
    the console-script wrapper may sit on a PATH the browser does not have."""
    if system.windows:
        # Chrome and Firefox start a .bat through cmd.exe.  "@echo off" keeps
        # cmd's echo out of the frame stream; %* passes the caller argument(s).
        if any(c in python for c in '"%^&|<>'):
            raise ValueError(f"the interpreter path {python!r} has characters cmd.exe would misread")
        return (
            "@echo off\r\n"
            "rem Written by `cisbridge install`: starts the cisbridge native messaging host.\r\n"
            "rem Re-run `cisbridge install` after moving or upgrading Python.\r\n"
            f'"{python}" {"".join(o + " " for o in LAUNCH_OPTIONS)}-c "{LAUNCH}" %*\r\n'
        )
    return (
        "#!/bin/sh\n"
        "# Written by `cisbridge install`: starts the cisbridge native messaging host.\n"
        "# Re-run `cisbridge install` after moving or upgrading Python.\n"
        f'exec {shlex.join(launcher_argv(python))} "$@"\n'
    )


def read_launcher(text: str) -> tuple[str | None, bool] | None:
    """(the interpreter, whether it runs with :data:`LAUNCH_OPTIONS`) of a
    launcher written by :func:`launcher_text`, now or by an earlier version
    (before ``-I``, or ``-m cisbridge host``); None when it is not one."""
    for line in text.splitlines():
        line = line.strip()
        if line.startswith("exec "):
            try:
                words = shlex.split(line)
            except ValueError:
                return None
            python = words[1] if len(words) > 1 else None
            return python, words[2 : 2 + len(LAUNCH_OPTIONS)] == list(LAUNCH_OPTIONS)
        if line.startswith('"') and (f' -c "{LAUNCH}"' in line or " -m cisbridge host" in line):
            return line[1:].split('"', 1)[0], f'" {" ".join(LAUNCH_OPTIONS)} -c "' in line
    return None


def launch_problem(python: str) -> str | None:
    """Why the launcher's command could not import the host, if it could not."""
    import subprocess

    try:
        done = subprocess.run([python, *LAUNCH_OPTIONS, "-c", "import cisbridge.host"],
                              capture_output=True, text=True, timeout=60)
    except (OSError, subprocess.TimeoutExpired) as exc:
        return f"cannot run {python}: {exc}"
    if done.returncode == 0:
        return None
    last = (done.stderr.strip().splitlines() or ["no output"])[-1]
    return (f"{python} {' '.join(LAUNCH_OPTIONS)} cannot import cisbridge ({last}): the browser could not start the "
            "host. Launchers run Python isolated, where PYTHONPATH and `pip install --user` do not count: install "
            "cisbridge into that Python or a virtual environment, or pass --python")


# ------------------------------------------------------------------ state

@dataclass
class State:
    platform: str
    scope: str
    launcher: str = ""
    python: str = ""
    #: logical path -> {"browsers": [...], "kind": "manifest"|"launcher"|"windows-manifest", "profile"?: dir}
    files: dict[str, dict[str, Any]] = field(default_factory=dict)
    #: "HIVE\\key" -> {"hive", "key", "value", "browsers"}
    registry: dict[str, dict[str, Any]] = field(default_factory=dict)
    #: directories install created, parents first
    dirs: list[str] = field(default_factory=list)
    extension_ids: list[str] = field(default_factory=list)

    @classmethod
    def load(cls, system: System) -> State | None:
        path = system.real(system.state_file())
        try:
            raw = json.loads(path.read_text(encoding="utf-8"))
        except FileNotFoundError:
            return None
        except (OSError, ValueError) as exc:
            raise InstallError(f"the install record {path} cannot be read ({exc}); remove it and re-run install") from None
        if raw.get("version") != STATE_VERSION:
            raise InstallError(f"the install record {path} is from another version of cisbridge")
        return cls(
            platform=raw["platform"], scope=raw["scope"], launcher=raw.get("launcher", ""),
            python=raw.get("python", ""), files=raw.get("files", {}), registry=raw.get("registry", {}),
            dirs=raw.get("dirs", []), extension_ids=raw.get("extension_ids", []),
        )

    def save(self, system: System) -> Path:
        path = system.real(system.state_file())
        _mkdirs(system, self, path.parent)
        data = {"version": STATE_VERSION, **self.__dict__}
        tmp = path.with_name(path.name + ".tmp")
        tmp.write_text(json.dumps(data, indent=2, sort_keys=True) + "\n", encoding="utf-8")
        os.replace(tmp, path)
        return path

    def browsers(self) -> set[str]:
        names: set[str] = set()
        for entry in (*self.files.values(), *self.registry.values()):
            names.update(entry["browsers"])
        return names - {"*"}

    def manifests(self) -> list[tuple[str, dict[str, Any]]]:
        return [(p, e) for p, e in self.files.items() if e["kind"] == "manifest"]


class InstallError(Exception):
    """Something install or uninstall cannot do; the message says what to do."""


def _mkdirs(system: System, state: State | None, directory: Path, record: bool = True) -> None:
    missing = []
    d = directory
    while not d.exists() and d != system.root:  # the fake root itself is not ours to record
        missing.append(d)
        if d.parent == d:
            break
        d = d.parent
    directory.mkdir(parents=True, exist_ok=True)
    if record and state is not None:
        for created in reversed(missing):
            logical = _logical(system, created)
            if logical not in state.dirs:
                state.dirs.append(logical)


def _logical(system: System, real: Path) -> str:
    if system.root is None:
        return str(real)
    rel = real.relative_to(system.root)
    if system.windows:
        parts = rel.parts
        return str(system.pure(f"{parts[0]}:\\", *parts[1:]))
    return str(system.pure("/", *rel.parts))


def _write(path: Path, content: str, mode: int | None = None) -> bool:
    """Write when different; returns True when something changed."""
    data = content.encode("utf-8")
    try:
        same = path.read_bytes() == data
    except OSError:
        same = False
    if not same:
        tmp = path.with_name(path.name + ".cisbridge-tmp")
        tmp.write_bytes(data)
        os.replace(tmp, path)
    if mode is not None and stat.S_IMODE(path.stat().st_mode) != mode:
        path.chmod(mode)
        same = False
    return not same


# ------------------------------------------------------------------ install

@dataclass
class Plan:
    browsers: list[str]
    ids: list[str]
    python: str = field(default_factory=lambda: sys.executable)
    profile_dir: str | None = None


def install(system: System, plan: Plan, say=print) -> State:
    chromium_ids, firefox_ids = manifests.split_ids(plan.ids)
    state = State.load(system) or State(platform=system.platform, scope=system.scope)
    if (state.platform, state.scope) != (system.platform, system.scope):
        raise InstallError(f"the install record {system.state_file()} belongs to another install; remove it first")

    python = plan.python
    if not system.fake and not os.path.isabs(python):
        raise InstallError(f"the interpreter path {python!r} is not absolute")
    launcher = str(system.launcher())
    launcher_real = system.real(launcher)
    _mkdirs(system, state, launcher_real.parent)
    changed = _write(launcher_real, launcher_text(system, python), None if system.windows else 0o755)
    say(f"{'wrote' if changed else 'kept'} launcher {launcher} (runs {python})")
    if not system.fake:
        problem = launch_problem(python)
        if problem:
            say(f"warning: {problem}")
    state.launcher, state.python = launcher, python
    state.files.setdefault(launcher, {"kind": "launcher", "browsers": ["*"]})
    state.extension_ids = [*chromium_ids, *firefox_ids]

    content = {
        "chromium": manifests.dumps(manifests.host_manifest("chromium", launcher, chromium_ids)),
        "firefox": manifests.dumps(manifests.host_manifest("firefox", launcher, firefox_ids)),
    }

    def put_manifest(logical: str, fam: str, browser: str, kind: str = "manifest", profile: str | None = None) -> None:
        real = system.real(logical)
        _mkdirs(system, state, real.parent)
        changed = _write(real, content[fam])
        entry = state.files.setdefault(logical, {"kind": kind, "browsers": []})
        if profile:
            entry["profile"] = profile
        if browser not in entry["browsers"]:
            entry["browsers"].append(browser)
        say(f"{'wrote' if changed else 'kept'} {logical}")

    if plan.profile_dir:
        location = loc.profile_location(system, plan.profile_dir)
        put_manifest(location.manifest, "chromium", PROFILE, profile=str(system.pure(plan.profile_dir)))
    for browser in plan.browsers:
        fam = loc.family(browser)
        for location in loc.file_locations(system, browser):
            put_manifest(location.manifest, fam, browser)
        regs = loc.registry_locations(system, browser)
        if regs:
            manifest_file = loc.windows_manifest(system, fam)
            put_manifest(manifest_file, fam, browser, kind="windows-manifest")
            assert system.registry is not None
            for reg in regs:
                before = system.registry.get(reg.hive, reg.key)
                if before != manifest_file:
                    system.registry.set(reg.hive, reg.key, manifest_file)
                entry = state.registry.setdefault(
                    reg.name, {"hive": reg.hive, "key": reg.key, "value": manifest_file, "browsers": []}
                )
                entry["value"] = manifest_file
                if browser not in entry["browsers"]:
                    entry["browsers"].append(browser)
                say(f"{'kept' if before == manifest_file else 'set'} {reg.name} = {manifest_file}")
    path = state.save(system)
    say(f"recorded in {_logical(system, path)}")
    return state


# ------------------------------------------------------------------ uninstall

def uninstall(system: System, browsers: list[str] | None, profile_dir: str | None = None, say=print) -> State | None:
    """Remove what install recorded: for ``browsers`` (None = everything) and/or
    one ``profile_dir``.  Returns the remaining state (None when all is gone)."""
    state = State.load(system)
    if state is None:
        say(f"nothing to remove: no install record at {system.state_file()}")
        return None
    profile = str(system.pure(profile_dir)) if profile_dir else None

    everything = browsers is None and profile is None

    def gone(browser: str, entry: dict[str, Any]) -> bool:
        if everything:
            return True
        if browser == PROFILE:
            return profile is not None and entry.get("profile") == profile
        return browsers is not None and browser in browsers

    def drop(entry: dict[str, Any]) -> bool:
        """Take the selected browsers off an entry; True when nobody is left."""
        entry["browsers"] = [b for b in entry["browsers"] if not gone(b, entry)]
        return not entry["browsers"]

    for name, entry in list(state.registry.items()):
        if drop(entry):
            assert system.registry is not None
            current = system.registry.get(entry["hive"], entry["key"])
            if current is None or current == entry["value"]:
                system.registry.delete(entry["hive"], entry["key"])
                say(f"removed {name}")
            else:
                say(f"left {name}: it now points at {current}, not at what install wrote")
            del state.registry[name]
    for logical, entry in list(state.files.items()):
        if entry["kind"] == "launcher":
            continue
        if entry["kind"] == "windows-manifest":
            fam = "firefox" if logical.endswith(".firefox.json") else "chromium"
            users = {b for e in state.registry.values() for b in e["browsers"] if loc.family(b) == fam}
            entry["browsers"] = [b for b in entry["browsers"] if b in users]
            if entry["browsers"]:
                continue
        elif not drop(entry):
            continue
        _remove_file(system, logical, say)
        del state.files[logical]

    finished = not any(e["kind"] != "launcher" for e in state.files.values()) and not state.registry
    if finished:
        for logical in [p for p, e in state.files.items() if e["kind"] == "launcher"]:
            _remove_file(system, logical, say)
            del state.files[logical]
        system.real(system.state_file()).unlink(missing_ok=True)
    for logical in reversed(list(state.dirs)):
        try:
            system.real(logical).rmdir()  # only when empty: never someone else's files
        except OSError:
            continue
        state.dirs.remove(logical)
        say(f"removed empty directory {logical}")
    if finished:
        say("removed the install record: cisbridge is no longer registered with any browser")
        return None
    state.save(system)
    say(f"kept for {', '.join(sorted(state.browsers()))}; record updated")
    return state


def _remove_file(system: System, logical: str, say) -> None:
    real = system.real(logical)
    try:
        real.unlink()
        say(f"removed {logical}")
    except FileNotFoundError:
        say(f"already gone: {logical}")


# ------------------------------------------------------------------ ids

def default_ids() -> list[str]:
    return [DEV_CHROME_EXTENSION_ID, FIREFOX_EXTENSION_ID]
