"""Keeping the host's ``allowed_extensions`` and the manifests' ids in step.

A browser starts the host for an extension the manifest names, but the host
serves only callers in its configured ``allowed_extensions``.  So the ids the
installer writes into manifests are the configured ones, and an id added with
``--extension-id`` is added to the configuration too — by adding a top-level
``allowed_extensions`` line to the configuration file when that file does not
set one yet.  A file that already sets the key is the administrator's to
edit: install prints the line to change and exits non-zero.
"""

from __future__ import annotations

import json
from pathlib import Path

from cisbridge import config as cfg
from cisbridge.install.installer import default_ids
from cisbridge.install.system import System


def ensure_allowed(system: System, extra: list[str], say=print) -> tuple[int, list[str]]:
    """Returns (exit code so far, the ids to write into the manifests)."""
    if system.fake:
        # A staged tree: the machine's own configuration is not the target's.
        return 0, list(dict.fromkeys([*default_ids(), *extra]))
    try:
        loaded = cfg.load()
    except cfg.ConfigError as exc:
        say(f"warning: the configuration is invalid ({exc}); manifests get the default extension ids. "
            "Fix it, then re-run install (`cisbridge doctor` shows the problem).")
        return (1 if extra else 0), list(dict.fromkeys([*default_ids(), *extra]))
    configured = list(loaded.config.allowed_extensions)
    missing = [e for e in extra if e not in configured]
    if not missing:
        return 0, list(dict.fromkeys([*configured, *extra]))

    files = cfg.config_files()
    target = files[0] if system.scope == "system" or len(files) == 1 else files[-1]
    system_file = files[0] if len(files) == 2 else None
    if system.scope == "user" and system_file is not None and _sets_key(system_file):
        say(f"error: {', '.join(missing)} is not in allowed_extensions of the system configuration "
            f"{system_file}, and a user configuration cannot add to it: ask your IT team to add it there.")
        return 1, configured
    if target.exists() and _sets_key(target):
        wanted = json.dumps([*configured, *missing])
        say(f"error: {target} sets allowed_extensions without {', '.join(missing)}: change it to\n"
            f"    allowed_extensions = {wanted}\n"
            "then re-run install.")
        return 1, configured
    _prepend(target, [*configured, *missing])
    say(f"added {', '.join(missing)} to allowed_extensions in {target}")
    return 0, [*configured, *missing]


def _sets_key(path: Path) -> bool:
    import tomllib

    try:
        with path.open("rb") as fh:
            return "allowed_extensions" in tomllib.load(fh)
    except (OSError, tomllib.TOMLDecodeError):
        return False


def _prepend(path: Path, ids: list[str]) -> None:
    """Top-level keys must precede every [table], so the line goes first."""
    old = path.read_text(encoding="utf-8") if path.exists() else ""
    line = (
        "# Extensions allowed to start the host (kept in step with the manifests by `cisbridge install`).\n"
        f"allowed_extensions = {json.dumps(ids)}\n"
    )
    new = line + ("\n" + old if old else "")
    cfg.parse(new, str(path))  # never write a file the host would refuse
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_text(new, encoding="utf-8")
