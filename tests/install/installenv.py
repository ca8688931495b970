"""Helpers for the installer tests: the real CLI in a subprocess, with a private HOME.

Every run gets its own HOME, XDG directories, log dir and config file, so
nothing outside the test's tmp dir is read or written (system-scope installs
use ``--root``).
"""

from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))  # tests/, for support.*
from support.interpreter import checkout_python  # noqa: E402

REPO = Path(__file__).resolve().parents[2]
CHROME_ID = "ekiaedepebiljeejbccahljdhmdiocpb"
FIREFOX_ID = "cisbridge@cisbridge.org"
HOST = "org.cisbridge.host"
#: the built extension and the ext branch's DevTools/BiDi clients (browser tests)
DIST = REPO / "extension" / "dist"
CDP_HELPERS = REPO / "tests" / "browser"


class Env:
    def __init__(self, base: Path):
        self.base = base
        self.home = base / "home"
        self.home.mkdir(parents=True)
        self.config = base / "config.toml"
        self.config.write_text('allowed_origins = ["https://ehr.example.nhs.uk"]\n')
        self.vars = dict(os.environ)
        self.vars.update(
            HOME=str(self.home),
            XDG_CONFIG_HOME=str(self.home / ".config"),
            XDG_DATA_HOME=str(self.home / ".local/share"),
            XDG_STATE_HOME=str(self.home / ".local/state"),
            XDG_CACHE_HOME=str(self.home / ".cache"),
            XDG_CONFIG_DIRS=str(base / "xdg-system"),
            CISBRIDGE_LOG_DIR=str(base / "log"),
            CISBRIDGE_CONFIG=str(self.config),
        )
        for name in ("PCSCLITE_CSOCK_NAME",):
            self.vars.pop(name, None)

    #: The CLI runs under an interpreter that has this checkout installed, so
    #: the launchers it writes (python -I: no PYTHONPATH) run this checkout.
    python = checkout_python()
    cli = [python, "-m", "cisbridge"]

    @property
    def launcher(self) -> Path:
        return self.home / ".local/share/cisbridge/cisbridge-host"

    @property
    def state(self) -> Path:
        return self.home / ".local/state/cisbridge/install-state.json"

    def run(self, *args: str, check: bool = True, env: dict | None = None) -> subprocess.CompletedProcess:
        proc = subprocess.run(
            [*self.cli, *args],
            capture_output=True, text=True, env={**self.vars, **(env or {})}, timeout=60,
        )
        if check and proc.returncode != 0:
            raise AssertionError(f"cisbridge {' '.join(args)} exited {proc.returncode}\n{proc.stdout}\n{proc.stderr}")
        return proc

    def doctor(self, *args: str, env: dict | None = None) -> tuple[int, list[dict]]:
        proc = self.run("doctor", "--json", *args, check=False, env=env)
        assert proc.returncode in (0, 1), proc.stderr
        report = json.loads(proc.stdout)
        assert report["ok"] == (proc.returncode == 0)
        return proc.returncode, report["checks"]


def tree(path: Path) -> dict[str, bytes | None]:
    """Every file and directory under path (for before/after comparisons)."""
    out: dict[str, bytes | None] = {}
    for p in sorted(path.rglob("*")):
        out[str(p.relative_to(path))] = p.read_bytes() if p.is_file() else None
    return out


def failures(checks: list[dict], prefix: str = "") -> list[dict]:
    return [c for c in checks if c["status"] == "fail" and c["check"].startswith(prefix)]
