"""The card signature as the GAS agent makes it: CKM_SHA1_RSA_PKCS on a real
PKCS#11 token (SoftHSM2), wrapped by build_signed_data, accepted by the simulator."""

from __future__ import annotations

import base64
import os
import shutil
import subprocess
from pathlib import Path

import pytest

from cisbridge.spine.server import role_assertion

from simclient import ONE_ROLE, Card, GasClient

MODULE = "/usr/lib/softhsm/libsofthsm2.so"

pytestmark = [
    pytest.mark.softhsm,
    pytest.mark.skipif(not (Path(MODULE).exists() and shutil.which("softhsm2-util")),
                       reason="SoftHSM2 is not installed"),
]


@pytest.fixture
def token(tmp_path, monkeypatch):
    (tmp_path / "tokens").mkdir()
    conf = tmp_path / "softhsm2.conf"
    conf.write_text(f"directories.tokendir = {tmp_path / 'tokens'}\n"
                    "objectstore.backend = file\nlog.level = ERROR\n")
    subprocess.run(["softhsm2-util", "--init-token", "--free", "--label", "simcard",
                    "--so-pin", "87654321", "--pin", "1234"], check=True, capture_output=True,
                   env=dict(os.environ, SOFTHSM2_CONF=str(conf)))
    import pkcs11

    from cisbridge.card import testcard

    # SoftHSM reads its store once per C_Initialize: other tests in this
    # process may have loaded it with another store.
    monkeypatch.setenv("SOFTHSM2_CONF", str(conf))
    testcard.use_store(str(conf))
    lib = pkcs11.lib(MODULE)
    tok = lib.get_token(token_label="simcard")
    with tok.open(user_pin="1234", rw=True) as session:
        yield session


def test_login_with_a_signature_made_on_the_token(token, ca, sim):
    from cryptography.hazmat.primitives import serialization
    from cryptography.hazmat.primitives.asymmetric import rsa
    from pkcs11 import Attribute, KeyType, Mechanism

    pub, priv = token.generate_keypair(KeyType.RSA, 2048, store=True, label="card")
    numbers = rsa.RSAPublicNumbers(int.from_bytes(pub[Attribute.PUBLIC_EXPONENT], "big"),
                                   int.from_bytes(pub[Attribute.MODULUS], "big"))
    cert = ca.issue_card_certificate(numbers.public_key(), ONE_ROLE)

    from cisbridge.spine.cms import build_signed_data

    gas = GasClient(sim.url)
    act = gas.activate()
    der = build_signed_data(base64.b64decode(act["challenge"]),
                            cert.public_bytes(serialization.Encoding.DER),
                            lambda data: priv.sign(data, mechanism=Mechanism.SHA1_RSA_PKCS))
    status, obj = gas.validate(Card(ONE_ROLE, None, cert), act,
                               response=base64.b64encode(der).decode())
    assert status == 200, obj
    ticket = obj["sso_ticket"]
    assert gas.select_role(ticket, "555000000101")[0] == 200
    assert role_assertion(ticket, sim.url).uid == ONE_ROLE
