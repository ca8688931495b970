"""An interpreter that runs *this checkout's* cisbridge the way installed
launchers run it: ``python -I`` (isolated: PYTHONPATH, the user site and the
current directory are not on ``sys.path``).

Usually that is simply ``sys.executable``: the venv has the checkout installed
in editable mode.  From a second git worktree sharing that venv, the editable
install points at the other checkout, and PYTHONPATH (which the tests use to
pick this one) is ignored under ``-I``; then a throwaway venv on the same base
interpreter is made whose only ``.pth`` names this checkout first and the
current interpreter's site-packages (msgspec, pyscard, ...) after it.
Used by the tests that run launchers and by scripts/bench_host.py.
"""

from __future__ import annotations

import atexit
import functools
import os
import shutil
import subprocess
import sys
import sysconfig
import tempfile
from pathlib import Path

REPO = Path(__file__).resolve().parents[2]
PACKAGE = REPO / "host" / "cisbridge"


def runs_this_checkout(python: str) -> bool:
    """Whether ``python -I`` imports cisbridge from this checkout."""
    out = subprocess.run(
        [python, "-I", "-c", "import cisbridge; print(cisbridge.__file__)"],
        capture_output=True, text=True, cwd="/", timeout=30,
    )
    return out.returncode == 0 and Path(out.stdout.strip()).resolve().parent == PACKAGE.resolve()


@functools.cache
def checkout_python() -> str:
    if runs_this_checkout(sys.executable):
        return sys.executable
    import venv

    home = Path(tempfile.mkdtemp(prefix="cisbridge-checkout-python-"))
    atexit.register(shutil.rmtree, home, True)
    venv.EnvBuilder(with_pip=False, symlinks=os.name != "nt").create(home)
    python = home / ("Scripts/python.exe" if os.name == "nt" else "bin/python")
    purelib = subprocess.run(
        [str(python), "-I", "-c", "import sysconfig; print(sysconfig.get_paths()['purelib'])"],
        capture_output=True, text=True, check=True,
    ).stdout.strip()
    ours = dict.fromkeys([str(REPO / "host"), sysconfig.get_paths()["purelib"], sysconfig.get_paths()["platlib"]])
    Path(purelib, "cisbridge-checkout.pth").write_text("".join(f"{p}\n" for p in ours))
    if not runs_this_checkout(str(python)):
        raise RuntimeError(f"{python} does not import cisbridge from {PACKAGE}")
    return str(python)
