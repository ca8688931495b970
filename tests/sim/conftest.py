"""Fixtures for the simulator tests: a test CA, cards and a real simulator."""

from __future__ import annotations

import pytest
from cryptography.hazmat.primitives.asymmetric import rsa

from cisbridge import testca
from cisbridge.sim import Simulator

from simclient import Card, GasClient


@pytest.fixture(scope="session")
def ca(tmp_path_factory) -> testca.TestCA:
    return testca.load_or_create(tmp_path_factory.mktemp("testca"))


@pytest.fixture(scope="session")
def card_key() -> rsa.RSAPrivateKey:
    return rsa.generate_private_key(public_exponent=65537, key_size=2048)


@pytest.fixture(scope="session")
def make_card(ca, card_key):
    def make(uuid: str, issuer: testca.TestCA | None = None) -> Card:
        cert = (issuer or ca).issue_card_certificate(card_key.public_key(), uuid)
        return Card(uuid, card_key, cert)
    return make


@pytest.fixture
def sim(ca):
    with Simulator(ca=ca) as s:
        yield s


@pytest.fixture
def tls_sim(ca):
    with Simulator(ca=ca, tls=True) as s:
        yield s


@pytest.fixture(params=["http", "https"])
def any_sim(request, ca):
    with Simulator(ca=ca, tls=request.param == "https") as s:
        yield s


@pytest.fixture
def gas(sim) -> GasClient:
    return GasClient(sim.url, sim.ca_file)


@pytest.fixture
def any_gas(any_sim) -> GasClient:
    return GasClient(any_sim.url, any_sim.ca_file)
