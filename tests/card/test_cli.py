"""`cisbridge card create|list|delete` as a person runs it."""

from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path

import pytest

pytestmark = pytest.mark.softhsm


def cisbridge(*args: str, env: dict[str, str]) -> subprocess.CompletedProcess:
    return subprocess.run([sys.executable, "-m", "cisbridge", *args], capture_output=True, text=True,
                          env=env, timeout=60)


def test_create_list_delete(tmp_path, stores):
    from cisbridge.card import testcard

    conf = testcard.make_store(tmp_path / "store")
    env = dict(os.environ, CISBRIDGE_TESTCA_DIR=stores.ca_dir)
    env.pop("SOFTHSM2_CONF", None)

    made = cisbridge("card", "create", "--softhsm-conf", conf, "--uuid", "555123456789", env=env)
    assert made.returncode == 0, made.stderr
    assert "555123456789" in made.stdout and "passcode:" in made.stdout

    locked = cisbridge("card", "create", "--softhsm-conf", conf, "--label", "lockedcard", "--pin", "4321",
                       "--locked", "--json", env=env)
    assert locked.returncode == 0, locked.stderr
    info = json.loads(locked.stdout)
    assert info["label"] == "lockedcard" and info["pin"] == "4321" and len(info["uuid"]) == 12

    listed = json.loads(cisbridge("card", "list", "--softhsm-conf", conf, "--json", env=env).stdout)
    assert {(c["label"], c["uuid"], c["locked"]) for c in listed} == {
        ("cisbridge test 555123456789", "555123456789", False),
        ("lockedcard", info["uuid"], True),
    }
    assert {c["subject"] for c in listed} == {"CN=555123456789,OU=people,O=nhs", f"CN={info['uuid']},OU=people,O=nhs"}

    gone = cisbridge("card", "delete", "lockedcard", "--softhsm-conf", conf, env=env)
    assert gone.returncode == 0, gone.stderr
    listed = json.loads(cisbridge("card", "list", "--softhsm-conf", conf, "--json", env=env).stdout)
    assert [c["label"] for c in listed] == ["cisbridge test 555123456789"]


def test_create_refuses_a_malformed_uuid(tmp_path, stores):
    from cisbridge.card import testcard

    conf = testcard.make_store(tmp_path / "store")
    result = cisbridge("card", "create", "--softhsm-conf", conf, "--uuid", "12ab", env=dict(os.environ))
    assert result.returncode == 1
    assert "12 digits" in result.stderr


def test_card_certificate_is_nhs_shaped_and_issued_by_the_test_ca(stores):
    from cryptography import x509

    from cisbridge import testca

    ca = testca.load_or_create(Path(stores.ca_dir))
    cert = stores.cards["alice"].certificate
    cert.verify_directly_issued_by(ca.certificate)
    assert [(a.oid._name, a.value) for a in cert.subject] == [
        ("organizationName", "nhs"), ("organizationalUnitName", "people"), ("commonName", "555000000001"),
    ]
    usage = cert.extensions.get_extension_for_class(x509.KeyUsage).value
    assert usage.digital_signature
    assert cert.public_key().key_size == 2048
