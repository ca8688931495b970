"""Fixtures of the browser tests; they live in browser_support.py, which the
test modules import by that name (tests/ has several conftest.py, so
`from conftest import ...` would find whichever was imported first)."""

from browser_support import *  # noqa: F401,F403  (fixtures and hooks)
