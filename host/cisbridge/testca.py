"""The test certificate authority that test cards and the simulator share.

THIS IS A TEST CA, NOT THE NHS.  It mimics the shape of NHS card certificates
(SPINE.md §7: subject ``O=nhs, OU=people, CN=<12-digit UUID>``, issuer
``O=nhs, OU=CA, CN=…``) so that clients parse test cards as they would real
ones, but its name says plainly what it is (``CN=cisbridge Test SubCA``) and
nothing it issues is trusted by any real NHS service.

``cisbridge card create`` asks it for the certificate of a SoftHSM2 card;
``cisbridge sim`` trusts it and uses it for its own TLS certificate.  It lives
in ``$CISBRIDGE_TESTCA_DIR`` or ``<user data dir>/cisbridge/testca`` as
``ca.pem`` and ``ca.key`` (0600).
"""

from __future__ import annotations

import contextlib
import datetime as dt
import ipaddress
import os
import re
from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING, Iterator

if TYPE_CHECKING:
    from cryptography import x509
    from cryptography.hazmat.primitives.asymmetric.rsa import RSAPrivateKey, RSAPublicKey

CA_COMMON_NAME = "cisbridge Test SubCA"
ENV_DIR = "CISBRIDGE_TESTCA_DIR"
CA_CERT_FILE = "ca.pem"
CA_KEY_FILE = "ca.key"
_UUID = re.compile(r"[0-9]{12}")


class TestCAError(Exception):
    """The test CA's files are unusable; the message says which and what to do."""


def default_directory() -> Path:
    env = os.environ.get(ENV_DIR)
    if env:
        return Path(env)
    import platformdirs

    return Path(platformdirs.user_data_dir("cisbridge")) / "testca"


@dataclass(frozen=True)
class TestCA:
    __test__ = False  # not a pytest test class, whatever its name

    directory: Path
    certificate: "x509.Certificate"
    private_key: "RSAPrivateKey"

    @property
    def cert_path(self) -> Path:
        """``ca.pem``: what a client gives as its CA file to trust the simulator."""
        return self.directory / CA_CERT_FILE

    def issue_card_certificate(
        self, public_key: "RSAPublicKey", uuid: str, display_name: str | None = None,
        *, days: int = 730,
    ) -> "x509.Certificate":
        """A card certificate shaped like an NHS one for the card holder ``uuid``.

        Real card certificates carry no name; when ``display_name`` is given it
        goes in a subjectAltName directoryName so test tools can say whose card
        it is.
        """
        from cryptography import x509
        from cryptography.hazmat.primitives import hashes
        from cryptography.hazmat.primitives.asymmetric import rsa
        from cryptography.x509.oid import NameOID

        if not isinstance(uuid, str) or not _UUID.fullmatch(uuid):
            raise ValueError("the card holder UUID must be exactly 12 digits")
        if not isinstance(public_key, rsa.RSAPublicKey):
            raise ValueError("NHS cards hold RSA keys; the public key given is not RSA")
        subject = x509.Name([
            x509.NameAttribute(NameOID.ORGANIZATION_NAME, "nhs"),
            x509.NameAttribute(NameOID.ORGANIZATIONAL_UNIT_NAME, "people"),
            x509.NameAttribute(NameOID.COMMON_NAME, uuid),
        ])
        builder = self._builder(subject, public_key, days).add_extension(
            x509.KeyUsage(digital_signature=True, content_commitment=False,
                          key_encipherment=False, data_encipherment=False,
                          key_agreement=False, key_cert_sign=False, crl_sign=False,
                          encipher_only=False, decipher_only=False),
            critical=True,
        ).add_extension(x509.BasicConstraints(ca=False, path_length=None), critical=True)
        if display_name:
            builder = builder.add_extension(x509.SubjectAlternativeName([
                x509.DirectoryName(x509.Name([
                    x509.NameAttribute(NameOID.COMMON_NAME, display_name)]))
            ]), critical=False)
        return builder.sign(self.private_key, hashes.SHA256())

    def issue_server_certificate(
        self, public_key: "RSAPublicKey", hostnames: list[str], *, days: int = 30,
    ) -> "x509.Certificate":
        """A TLS server certificate (the simulator's) for ``hostnames`` (names or IPs)."""
        from cryptography import x509
        from cryptography.hazmat.primitives import hashes
        from cryptography.x509.oid import ExtendedKeyUsageOID, NameOID

        if not hostnames:
            raise ValueError("a server certificate needs at least one host name")
        names: list[x509.GeneralName] = []
        for h in hostnames:
            try:
                names.append(x509.IPAddress(ipaddress.ip_address(h)))
            except ValueError:
                names.append(x509.DNSName(h))
        subject = x509.Name([
            x509.NameAttribute(NameOID.ORGANIZATION_NAME, "cisbridge test"),
            x509.NameAttribute(NameOID.COMMON_NAME, hostnames[0]),
        ])
        return (
            self._builder(subject, public_key, days)
            .add_extension(x509.SubjectAlternativeName(names), critical=False)
            .add_extension(x509.ExtendedKeyUsage([ExtendedKeyUsageOID.SERVER_AUTH]), critical=False)
            .add_extension(x509.BasicConstraints(ca=False, path_length=None), critical=True)
            .sign(self.private_key, hashes.SHA256())
        )

    def verify_issued(self, certificate: "x509.Certificate", at: dt.datetime | None = None) -> None:
        """Raise :class:`TestCAError` unless this CA issued ``certificate`` and it is in date."""
        from cryptography.exceptions import InvalidSignature

        now = at or dt.datetime.now(dt.timezone.utc)
        try:
            certificate.verify_directly_issued_by(self.certificate)
        except (ValueError, TypeError, InvalidSignature):
            raise TestCAError("the certificate was not issued by the cisbridge test CA") from None
        if not (certificate.not_valid_before_utc <= now <= certificate.not_valid_after_utc):
            raise TestCAError("the certificate is outside its validity period")

    def _builder(self, subject, public_key, days: int):
        from cryptography import x509

        now = dt.datetime.now(dt.timezone.utc)
        return (
            x509.CertificateBuilder()
            .subject_name(subject)
            .issuer_name(self.certificate.subject)
            .public_key(public_key)
            .serial_number(x509.random_serial_number())
            .not_valid_before(now - dt.timedelta(hours=1))
            .not_valid_after(now + dt.timedelta(days=days))
            .add_extension(x509.AuthorityKeyIdentifier.from_issuer_public_key(
                self.certificate.public_key()), critical=False)
        )


def load_or_create(directory: Path | None = None) -> TestCA:
    """The test CA in ``directory`` (default: :func:`default_directory`), made on first use."""
    from cryptography import x509
    from cryptography.hazmat.primitives import serialization

    directory = Path(directory) if directory is not None else default_directory()
    cert_path, key_path = directory / CA_CERT_FILE, directory / CA_KEY_FILE
    directory.mkdir(parents=True, exist_ok=True, mode=0o700)
    with _lock(directory):
        if not cert_path.exists() and not key_path.exists():
            _create(directory)
        if not (cert_path.exists() and key_path.exists()):
            missing = CA_KEY_FILE if cert_path.exists() else CA_CERT_FILE
            raise TestCAError(f"the test CA in {directory} is incomplete ({missing} is missing); "
                              "delete the directory to make a new test CA")
        try:
            cert = x509.load_pem_x509_certificate(cert_path.read_bytes())
            key = serialization.load_pem_private_key(key_path.read_bytes(), password=None)
        except (ValueError, TypeError) as exc:
            raise TestCAError(f"the test CA in {directory} cannot be read ({exc}); "
                              "delete the directory to make a new test CA") from None
    return TestCA(directory, cert, key)  # type: ignore[arg-type]


def _create(directory: Path) -> None:
    from cryptography import x509
    from cryptography.hazmat.primitives import hashes, serialization
    from cryptography.hazmat.primitives.asymmetric import rsa
    from cryptography.x509.oid import NameOID

    key = rsa.generate_private_key(public_exponent=65537, key_size=2048)
    name = x509.Name([
        x509.NameAttribute(NameOID.ORGANIZATION_NAME, "nhs"),
        x509.NameAttribute(NameOID.ORGANIZATIONAL_UNIT_NAME, "CA"),
        x509.NameAttribute(NameOID.COMMON_NAME, CA_COMMON_NAME),
    ])
    now = dt.datetime.now(dt.timezone.utc)
    cert = (
        x509.CertificateBuilder()
        .subject_name(name)
        .issuer_name(name)
        .public_key(key.public_key())
        .serial_number(x509.random_serial_number())
        .not_valid_before(now - dt.timedelta(hours=1))
        .not_valid_after(now + dt.timedelta(days=3650))
        .add_extension(x509.BasicConstraints(ca=True, path_length=0), critical=True)
        .add_extension(x509.KeyUsage(digital_signature=False, content_commitment=False,
                                     key_encipherment=False, data_encipherment=False,
                                     key_agreement=False, key_cert_sign=True, crl_sign=True,
                                     encipher_only=False, decipher_only=False), critical=True)
        .add_extension(x509.SubjectKeyIdentifier.from_public_key(key.public_key()), critical=False)
        .sign(key, hashes.SHA256())
    )
    key_pem = key.private_bytes(serialization.Encoding.PEM, serialization.PrivateFormat.PKCS8,
                                serialization.NoEncryption())
    _write(directory / CA_KEY_FILE, key_pem, 0o600)
    _write(directory / CA_CERT_FILE, cert.public_bytes(serialization.Encoding.PEM), 0o644)


def _write(path: Path, data: bytes, mode: int) -> None:
    tmp = path.with_name(path.name + ".tmp")
    fd = os.open(tmp, os.O_WRONLY | os.O_CREAT | os.O_TRUNC, mode)
    try:
        os.write(fd, data)
    finally:
        os.close(fd)
    os.chmod(tmp, mode)
    os.replace(tmp, path)


@contextlib.contextmanager
def _lock(directory: Path) -> Iterator[None]:
    """Serialise creation between processes (a test run may start several)."""
    try:
        import fcntl
    except ImportError:  # Windows: creation races are unlikely enough for a test CA
        yield
        return
    fd = os.open(directory / ".lock", os.O_RDWR | os.O_CREAT, 0o600)
    try:
        fcntl.flock(fd, fcntl.LOCK_EX)
        yield
    finally:
        os.close(fd)
