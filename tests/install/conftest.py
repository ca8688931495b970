"""Fixtures of the installer tests (helpers live in installenv.py)."""

from __future__ import annotations

import sys
from pathlib import Path

import pytest

sys.path.insert(0, str(Path(__file__).parent))

from installenv import Env  # noqa: E402


@pytest.fixture
def env(tmp_path) -> Env:
    return Env(tmp_path)
