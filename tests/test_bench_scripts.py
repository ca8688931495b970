"""The benchmark scripts are not run by the suite (they take minutes and their
numbers are read by a person), but they must not rot: each one's module-level
code (its imports of the suite's helpers, its classes) runs here."""

from __future__ import annotations

import subprocess
import sys
from pathlib import Path

import pytest

SCRIPTS = sorted((Path(__file__).resolve().parents[1] / "scripts").glob("bench_*.py"))


def test_there_are_benchmark_scripts():
    assert len(SCRIPTS) >= 6


@pytest.mark.parametrize("script", SCRIPTS, ids=[s.name for s in SCRIPTS])
def test_benchmark_script_loads(script):
    # run_name is not "__main__": the module body runs, main() does not.
    code = f"import runpy; runpy.run_path({str(script)!r}, run_name='bench_smoke')"
    done = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, timeout=120, cwd=script.parent)
    assert done.returncode == 0, done.stderr[-3000:]
