"""The project's test certificate authority (minimal stand-in, see below).

Issues certificates shaped like NHS smartcard certificates (SPINE.md §7) to
test cards; the GAS simulator trusts it.  The CA key and certificate live in a
directory (``CISBRIDGE_TESTCA_DIR``, else the user data dir's ``testca``) and
are made on first use.

This is the card branch's minimal version of the API the simulator branch
defines (``load_or_create``, ``TestCA.certificate``,
``TestCA.issue_card_certificate``); the simulator's version replaces it.
"""

from __future__ import annotations

import datetime as dt
import os
from pathlib import Path

from cryptography import x509
from cryptography.hazmat.primitives import hashes, serialization
from cryptography.hazmat.primitives.asymmetric import rsa
from cryptography.x509.oid import NameOID


def default_directory() -> Path:
    env = os.environ.get("CISBRIDGE_TESTCA_DIR")
    if env:
        return Path(env)
    import platformdirs

    return Path(platformdirs.user_data_dir("cisbridge")) / "testca"


class TestCA:
    __test__ = False  # not a pytest class

    def __init__(self, key: rsa.RSAPrivateKey, certificate: x509.Certificate):
        self._key = key
        self.certificate = certificate

    def issue_card_certificate(self, public_key, uuid: str, display_name: str | None = None) -> x509.Certificate:
        """A card certificate: subject O=nhs, OU=people, CN=<uuid>."""
        now = dt.datetime.now(dt.timezone.utc)
        subject = x509.Name([
            x509.NameAttribute(NameOID.ORGANIZATION_NAME, "nhs"),
            x509.NameAttribute(NameOID.ORGANIZATIONAL_UNIT_NAME, "people"),
            x509.NameAttribute(NameOID.COMMON_NAME, uuid),
        ])
        builder = (
            x509.CertificateBuilder()
            .subject_name(subject)
            .issuer_name(self.certificate.subject)
            .public_key(public_key)
            .serial_number(x509.random_serial_number())
            .not_valid_before(now - dt.timedelta(days=1))
            .not_valid_after(now + dt.timedelta(days=3 * 365))
            .add_extension(x509.BasicConstraints(ca=False, path_length=None), critical=True)
            .add_extension(_usage(digital_signature=True), critical=True)
        )
        return builder.sign(self._key, hashes.SHA256())


def _usage(digital_signature=False, cert_sign=False) -> x509.KeyUsage:
    return x509.KeyUsage(
        digital_signature=digital_signature, content_commitment=False, key_encipherment=False,
        data_encipherment=False, key_agreement=False, key_cert_sign=cert_sign, crl_sign=cert_sign,
        encipher_only=False, decipher_only=False,
    )


def load_or_create(directory: str | os.PathLike | None = None) -> TestCA:
    directory = Path(directory) if directory is not None else default_directory()
    key_path, cert_path = directory / "ca.key", directory / "ca.pem"
    if key_path.exists() and cert_path.exists():
        key = serialization.load_pem_private_key(key_path.read_bytes(), password=None)
        return TestCA(key, x509.load_pem_x509_certificate(cert_path.read_bytes()))
    directory.mkdir(parents=True, exist_ok=True)
    key = rsa.generate_private_key(public_exponent=65537, key_size=2048)
    name = x509.Name([
        x509.NameAttribute(NameOID.ORGANIZATION_NAME, "nhs"),
        x509.NameAttribute(NameOID.ORGANIZATIONAL_UNIT_NAME, "CA"),
        x509.NameAttribute(NameOID.COMMON_NAME, "cisbridge Test SubCA"),
    ])
    now = dt.datetime.now(dt.timezone.utc)
    cert = (
        x509.CertificateBuilder()
        .subject_name(name)
        .issuer_name(name)
        .public_key(key.public_key())
        .serial_number(x509.random_serial_number())
        .not_valid_before(now - dt.timedelta(days=1))
        .not_valid_after(now + dt.timedelta(days=10 * 365))
        .add_extension(x509.BasicConstraints(ca=True, path_length=0), critical=True)
        .add_extension(_usage(cert_sign=True), critical=True)
        .sign(key, hashes.SHA256())
    )
    fd = os.open(key_path, os.O_WRONLY | os.O_CREAT | os.O_TRUNC, 0o600)
    with os.fdopen(fd, "wb") as f:
        f.write(key.private_bytes(serialization.Encoding.PEM, serialization.PrivateFormat.PKCS8,
                                  serialization.NoEncryption()))
    cert_path.write_bytes(cert.public_bytes(serialization.Encoding.PEM))
    return TestCA(key, cert)
