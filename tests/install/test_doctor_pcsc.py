"""doctor's PC/SC line against a private pcscd with the vpcd virtual reader,
and a whole good install passing end to end (exit status 0)."""

from __future__ import annotations

import sys
import time

import pytest
from installenv import REPO

pytestmark = pytest.mark.pcsc

SUPPORT = REPO / "tests" / "support"


@pytest.fixture
def pcscd(tmp_path):
    if not (SUPPORT / "pcsc.py").is_file():
        pytest.fail("tests/support/pcsc.py (the private pcscd helper) is missing")
    sys.path.insert(0, str(SUPPORT.parent))
    from support.pcsc import PrivatePcscd, available

    missing = available()
    if missing:
        pytest.fail(missing)
    daemon = PrivatePcscd(tmp_path / "pcscd")
    daemon.add_vpcd("Virtual PCD")
    daemon.start()
    yield daemon
    daemon.close()


def test_readers_and_card_listed_and_a_good_install_passes(env, pcscd):
    from support.pcsc import READER, VirtualCard

    via = {"PCSCLITE_CSOCK_NAME": pcscd.socket_path}
    env.run("install", "--browser", "chromium")
    code, checks = env.doctor("--browser", "chromium", env=via)
    pcsc = next(c for c in checks if c["check"] == "PC/SC")
    assert pcsc["status"] == "ok" and {"name": READER, "cardPresent": False} in pcsc["detail"]["readers"]
    assert code == 0, [c for c in checks if c["status"] == "fail"]

    with VirtualCard(pcscd.vpcd["Virtual PCD"].port) as card:
        card.insert()
        # pcscd polls vpcd every 400 ms: look again until it has seen the card.
        deadline = time.monotonic() + 5
        while True:
            code, checks = env.doctor("--browser", "chromium", "--no-self-test", env=via)
            pcsc = next(c for c in checks if c["check"] == "PC/SC")
            if {"name": READER, "cardPresent": True} in pcsc["detail"]["readers"] or time.monotonic() > deadline:
                break
        assert {"name": READER, "cardPresent": True} in pcsc["detail"]["readers"]

    pcscd.stop()
    code, checks = env.doctor("--browser", "chromium", "--no-self-test", env=via)
    pcsc = next(c for c in checks if c["check"] == "PC/SC")
    assert code == 1 and pcsc["status"] == "fail" and "pcscd" in pcsc["fix"]
