"""A private pcscd with the vpcd virtual reader for this test process, and
virtual cards to insert into it (tests/support/pcsc.py does the work)."""

from __future__ import annotations

from pathlib import Path

import pytest
from support.pcsc import Events, VirtualCard, available, process_pcscd

# libpcsclite reads PCSCLITE_CSOCK_NAME at the process's first PC/SC call:
# pick the socket now, while this conftest is imported, before any test runs.
_MISSING = available()
_DAEMON = None if _MISSING else process_pcscd()


def pytest_collection_modifyitems(config, items):
    here = Path(__file__).parent
    for item in items:
        if here in Path(str(item.fspath)).parents:
            item.add_marker(pytest.mark.pcsc)
            if _MISSING:
                item.add_marker(pytest.mark.skip(reason=_MISSING))


@pytest.fixture
def pcscd():
    """The private pcscd, running (tests may stop or kill it; the next test
    starts it again).  Stopped when the test process exits."""
    _DAEMON.start()
    return _DAEMON


@pytest.fixture
def card(pcscd):
    """A virtual card for the first vpcd slot (READER); not inserted yet."""
    c = VirtualCard(pcscd.vpcd["Virtual PCD"].port)
    yield c
    c.remove()


@pytest.fixture
def second_card(pcscd):
    """A virtual card for the second vpcd slot (SECOND_READER)."""
    c = VirtualCard(pcscd.vpcd["Virtual PCD"].port + 1, atr=bytes.fromhex("3B8F8001804F0CA000000306030001000000006A"))
    yield c
    c.remove()


@pytest.fixture
def events():
    return Events()


@pytest.fixture
def monitor(pcscd, events):
    """A started ReaderMonitor on the private pcscd, stopped after the test."""
    from cisbridge.card.pcsc import ReaderMonitor

    m = ReaderMonitor(retry_min=0.05, retry_max=0.5)
    m.start(events)
    assert m.wait_ready(5), "the monitor did not finish its first look at PC/SC"
    yield m
    assert m.stop(), "the monitor's thread did not stop"
