"""CMS SignedData over a challenge: what the card login sends, checked both by
our verifier and independently by OpenSSL."""

from __future__ import annotations

import base64
import shutil
import subprocess

import pytest
from cryptography.hazmat.primitives import hashes, serialization
from cryptography.hazmat.primitives.asymmetric import padding, rsa
from cryptography.hazmat.primitives.serialization import pkcs7

from cisbridge.spine.cms import CmsError, build_signed_data, verify_signed_data

CHALLENGE = b"\x8a" * 16 + b"challenge-bytes"


def _der(cert) -> bytes:
    return cert.public_bytes(serialization.Encoding.DER)


def _signer(key):
    return lambda data: key.sign(data, padding.PKCS1v15(), hashes.SHA1())


@pytest.fixture(scope="module")
def card(make_card):
    return make_card("555000000001")


@pytest.mark.parametrize("detached", [False, True])
@pytest.mark.parametrize("signed_attributes", [True, False])
def test_verifies_what_it_builds(card, detached, signed_attributes):
    der = build_signed_data(CHALLENGE, _der(card.certificate), _signer(card.key),
                            detached=detached, signed_attributes=signed_attributes)
    signer = verify_signed_data(der, CHALLENGE)
    assert signer == card.certificate


@pytest.mark.skipif(shutil.which("openssl") is None, reason="needs the openssl command")
def test_openssl_accepts_the_signed_data(card, ca, tmp_path):
    der = build_signed_data(CHALLENGE, _der(card.certificate), _signer(card.key))
    (tmp_path / "sig.der").write_bytes(der)
    out = subprocess.run(
        ["openssl", "cms", "-verify", "-inform", "DER", "-in", str(tmp_path / "sig.der"),
         "-CAfile", str(ca.cert_path), "-purpose", "any", "-out", str(tmp_path / "content")],
        capture_output=True, text=True)
    assert out.returncode == 0, out.stderr
    assert (tmp_path / "content").read_bytes() == CHALLENGE
    printed = subprocess.run(["openssl", "cms", "-cmsout", "-print", "-inform", "DER",
                              "-in", str(tmp_path / "sig.der")], capture_output=True, text=True)
    assert "algorithm: sha1 " in printed.stdout
    assert "rsaEncryption" in printed.stdout


def test_refuses_a_signature_over_other_bytes(card):
    der = build_signed_data(CHALLENGE, _der(card.certificate), _signer(card.key), detached=True)
    with pytest.raises(CmsError, match="message digest"):
        verify_signed_data(der, b"another challenge")


def test_refuses_embedded_content_that_is_not_the_challenge(card):
    der = build_signed_data(b"other", _der(card.certificate), _signer(card.key))
    with pytest.raises(CmsError, match="not the challenge"):
        verify_signed_data(der, CHALLENGE)


def test_refuses_a_signature_by_another_key(card):
    other = rsa.generate_private_key(public_exponent=65537, key_size=2048)
    der = build_signed_data(CHALLENGE, _der(card.certificate), _signer(other))
    with pytest.raises(CmsError, match="does not verify"):
        verify_signed_data(der, CHALLENGE)


def test_refuses_sha256_signed_data_from_another_builder(card):
    # Built by cryptography (which cannot do sha1): parsed fine, refused for its digest.
    der = (pkcs7.PKCS7SignatureBuilder().set_data(CHALLENGE)
           .add_signer(card.certificate, card.key, hashes.SHA256())
           .sign(serialization.Encoding.DER, [pkcs7.PKCS7Options.Binary]))
    with pytest.raises(CmsError, match="sha256, expected sha1"):
        verify_signed_data(der, CHALLENGE)


@pytest.mark.parametrize("junk", [b"", b"\x30\x03\x02\x01\x01", b"not der at all",
                                  base64.b64decode("MIAGCSqGSIb3DQEHAqCAMIACAQE=")])
def test_refuses_junk(junk):
    with pytest.raises(CmsError):
        verify_signed_data(junk, CHALLENGE)


def test_refuses_signed_data_without_the_certificate(card):
    from asn1crypto import cms

    der = build_signed_data(CHALLENGE, _der(card.certificate), _signer(card.key))
    info = cms.ContentInfo.load(der)
    info["content"]["certificates"] = []
    with pytest.raises(CmsError, match="certificate"):
        verify_signed_data(info.dump(force=True), CHALLENGE)
