"""SoftHSM2 test cards made once per test run through `cisbridge card create`'s code.

Stores (each a private SoftHSM2 store, TESTBED.md):
  main:    alice (passcode 1234), a locked card, a card on its final try
  empty:   no card at all
  nocert:  a card with a key pair but no certificate
  pinpad:  a card that says its reader has a PIN pad (protected authentication path)
SoftHSM reads its store at C_Initialize, so tests that use this process's
SoftHSM switch stores with the `store` fixture (which re-initialises it).
"""

from __future__ import annotations

import os
from dataclasses import dataclass, field
from typing import Any

import pytest

from cisbridge.card import softhsm_module
from cisbridge.card import testcard
from cardhelpers import PIN


@dataclass
class Stores:
    main: str
    empty: str
    nocert: str
    pinpad: str
    cards: dict[str, testcard.TestCard] = field(default_factory=dict)
    ca_dir: str = ""


@pytest.fixture(scope="session")
def stores(tmp_path_factory) -> Stores:
    if not os.path.exists(softhsm_module()):
        pytest.skip("SoftHSM2 is not installed")
    root = tmp_path_factory.mktemp("softhsm")
    ca_dir = root / "testca"
    os.environ["CISBRIDGE_TESTCA_DIR"] = str(ca_dir)
    s = Stores(
        main=testcard.make_store(root / "main"),
        empty=testcard.make_store(root / "empty"),
        nocert=testcard.make_store(root / "nocert"),
        pinpad=testcard.make_store(root / "pinpad"),
        ca_dir=str(ca_dir),
    )
    s.cards["alice"] = testcard.create(label="alice", pin=PIN, uuid="555000000001", softhsm_conf=s.main)
    s.cards["locked"] = testcard.create(label="locked", pin=PIN, uuid="555000000002", softhsm_conf=s.main, locked=True)
    s.cards["final"] = testcard.create(label="final", pin=PIN, uuid="555000000003", softhsm_conf=s.main)
    testcard.set_pin_flags("final", final_try=True, softhsm_conf=s.main)
    s.cards["bare"] = testcard.create(label="bare", pin=PIN, softhsm_conf=s.nocert, with_certificate=False)
    s.cards["pinpad"] = testcard.create(label="pinpad", pin=PIN, softhsm_conf=s.pinpad)
    testcard.set_pin_flags("pinpad", protected_path=True, softhsm_conf=s.pinpad)
    return s


@pytest.fixture
def store(stores):
    """Point this process's SoftHSM at one of the stores: store(stores.main)."""

    def use(conf: str) -> str:
        return testcard.use_store(conf)

    return use


@pytest.fixture
def open_card(store, stores):
    """CardToken(s) on the main store (or another), closed after the test."""
    from cisbridge.card.token import CardToken

    made: list[CardToken] = []

    def make(label: str | None = "alice", conf: str | None = None, **kwargs: Any) -> CardToken:
        store(conf or stores.main)
        card = CardToken(softhsm_module(), token_label=label, **kwargs)
        made.append(card)
        return card

    yield make
    for card in made:
        card.close()
