"""The built-in GAS agent end to end: real host + SoftHSM2 cards + the simulator over HTTP(S)."""

from __future__ import annotations

import os

import pytest
from gas_support import MANY_ROLES, NO_ROLES, ONE_ROLE, PIN, Cards, gas_config

from cisbridge import testca
from cisbridge.card import softhsm_module, testcard


@pytest.fixture(scope="session")
def gas_cards(tmp_path_factory) -> Cards:
    if not os.path.exists(softhsm_module()):
        pytest.skip("SoftHSM2 is not installed")
    root = tmp_path_factory.mktemp("gas-cards")
    ca = testca.load_or_create(root / "testca")
    cards = Cards(conf=testcard.make_store(root / "store"), ca=ca)
    for uuid, label in ((ONE_ROLE, "one"), (MANY_ROLES, "many"), (NO_ROLES, "none")):
        testcard.create(label=label, pin=PIN, uuid=uuid, softhsm_conf=cards.conf, ca=ca)
        cards.labels[uuid] = label
    untrusted = testca.load_or_create(root / "other-ca")
    testcard.create(label="stranger", pin=PIN, uuid=ONE_ROLE, softhsm_conf=cards.conf, ca=untrusted)
    return cards


@pytest.fixture(params=["http", "https"])
def sim(request, gas_cards):
    from cisbridge.sim.server import Simulator

    with Simulator(ca=gas_cards.ca, tls=request.param == "https", idle_time=60, max_time=120) as s:
        yield s


@pytest.fixture
def gas_host(start_host, gas_cards, sim):
    def start(label: str = "one", extra: str = "", timeout: float = 5):
        return start_host(gas_config(sim, label, extra, timeout), env={"SOFTHSM2_CONF": gas_cards.conf})

    return start
