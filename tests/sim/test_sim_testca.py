"""The test CA: made once, kept private, issuing NHS-shaped card certificates."""

from __future__ import annotations

import os
import stat

import pytest
from cryptography import x509
from cryptography.hazmat.primitives.asymmetric import ec, rsa
from cryptography.x509.oid import NameOID

from cisbridge import testca


def _name(name: x509.Name) -> list[tuple[str, str]]:
    return [(a.oid._name, a.value) for a in name]


def test_created_once_then_loaded(tmp_path):
    first = testca.load_or_create(tmp_path / "ca")
    second = testca.load_or_create(tmp_path / "ca")
    assert first.certificate == second.certificate
    assert stat.S_IMODE(os.stat(tmp_path / "ca" / "ca.key").st_mode) == 0o600
    assert (tmp_path / "ca" / "ca.pem").read_bytes().startswith(b"-----BEGIN CERTIFICATE-----")
    assert first.cert_path == tmp_path / "ca" / "ca.pem"


def test_says_it_is_a_test_ca(ca):
    assert _name(ca.certificate.subject) == [
        ("organizationName", "nhs"), ("organizationalUnitName", "CA"),
        ("commonName", "cisbridge Test SubCA")]
    assert ca.certificate.extensions.get_extension_for_class(x509.BasicConstraints).value.ca


def test_default_directory_follows_the_environment(tmp_path, monkeypatch):
    monkeypatch.setenv("CISBRIDGE_TESTCA_DIR", str(tmp_path / "env-ca"))
    made = testca.load_or_create()
    assert made.directory == tmp_path / "env-ca"
    assert (tmp_path / "env-ca" / "ca.key").exists()


def test_card_certificate_is_shaped_like_an_nhs_card(ca):
    key = rsa.generate_private_key(public_exponent=65537, key_size=2048)
    cert = ca.issue_card_certificate(key.public_key(), "555000000001", "ONEROLE Alice Dr")
    assert _name(cert.subject) == [("organizationName", "nhs"),
                                   ("organizationalUnitName", "people"),
                                   ("commonName", "555000000001")]
    assert cert.issuer == ca.certificate.subject
    usage = cert.extensions.get_extension_for_class(x509.KeyUsage).value
    assert usage.digital_signature and not usage.key_cert_sign
    assert cert.public_key().public_numbers() == key.public_key().public_numbers()
    san = cert.extensions.get_extension_for_class(x509.SubjectAlternativeName).value
    names = san.get_values_for_type(x509.DirectoryName)
    assert names[0].get_attributes_for_oid(NameOID.COMMON_NAME)[0].value == "ONEROLE Alice Dr"
    ca.verify_issued(cert)


def test_no_name_means_no_alt_name(ca):
    key = rsa.generate_private_key(public_exponent=65537, key_size=2048)
    cert = ca.issue_card_certificate(key.public_key(), "555000000002")
    with pytest.raises(x509.ExtensionNotFound):
        cert.extensions.get_extension_for_class(x509.SubjectAlternativeName)


@pytest.mark.parametrize("uuid", ["55500000001", "5550000000011", "55500000000a", "", 555000000001])
def test_refuses_a_uuid_that_is_not_12_digits(ca, uuid):
    key = rsa.generate_private_key(public_exponent=65537, key_size=2048)
    with pytest.raises(ValueError, match="12 digits"):
        ca.issue_card_certificate(key.public_key(), uuid)


def test_refuses_a_non_rsa_key(ca):
    with pytest.raises(ValueError, match="RSA"):
        ca.issue_card_certificate(ec.generate_private_key(ec.SECP256R1()).public_key(),
                                  "555000000001")


def test_does_not_vouch_for_another_cas_card(ca, tmp_path):
    other = testca.load_or_create(tmp_path / "other")
    key = rsa.generate_private_key(public_exponent=65537, key_size=2048)
    foreign = other.issue_card_certificate(key.public_key(), "555000000001")
    with pytest.raises(testca.TestCAError, match="not issued by"):
        ca.verify_issued(foreign)


def test_incomplete_directory_is_explained(tmp_path):
    testca.load_or_create(tmp_path / "ca")
    (tmp_path / "ca" / "ca.key").unlink()
    with pytest.raises(testca.TestCAError, match="ca.key is missing"):
        testca.load_or_create(tmp_path / "ca")


def test_out_of_date_card_is_not_vouched_for(ca):
    import datetime as dt

    key = rsa.generate_private_key(public_exponent=65537, key_size=2048)
    cert = ca.issue_card_certificate(key.public_key(), "555000000001", days=30)
    later = dt.datetime.now(dt.timezone.utc) + dt.timedelta(days=31)
    with pytest.raises(testca.TestCAError, match="validity"):
        ca.verify_issued(cert, at=later)


def test_server_certificate_names_hosts_and_addresses(ca):
    import ipaddress

    key = rsa.generate_private_key(public_exponent=65537, key_size=2048)
    cert = ca.issue_server_certificate(key.public_key(), ["localhost", "127.0.0.1", "::1"])
    san = cert.extensions.get_extension_for_class(x509.SubjectAlternativeName).value
    assert san.get_values_for_type(x509.DNSName) == ["localhost"]
    assert san.get_values_for_type(x509.IPAddress) == [ipaddress.ip_address("127.0.0.1"),
                                                       ipaddress.ip_address("::1")]
    ca.verify_issued(cert)
