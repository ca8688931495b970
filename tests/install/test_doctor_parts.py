"""doctor's card and agent checks against real parts: SoftHSM2, a TLS server, a Ticket API library."""

from __future__ import annotations

import datetime
import shutil
import socket
import ssl
import subprocess
import threading
from pathlib import Path

import pytest
from installenv import REPO

SOFTHSM = "/usr/lib/softhsm/libsofthsm2.so"
ORIGINS = 'allowed_origins = ["https://ehr.example.nhs.uk"]\n'


def only(checks, prefix, status):
    found = [c for c in checks if c["check"].startswith(prefix) and c["status"] == status]
    assert found, checks
    return found[0]


# ------------------------------------------------------------------ PKCS#11

@pytest.fixture
def softhsm(tmp_path):
    if not Path(SOFTHSM).exists():
        pytest.fail("SoftHSM2 is needed (scripts/setup installs softhsm2)")
    tokens = tmp_path / "tokens"
    tokens.mkdir()
    conf = tmp_path / "softhsm2.conf"
    conf.write_text(f"directories.tokendir = {tokens}\nobjectstore.backend = file\nlog.level = ERROR\n")
    return {"SOFTHSM2_CONF": str(conf)}


def make_card(env, softhsm, *extra):
    subprocess.run([*env.cli, "card", "create", "--label", "DOCTOR CARD", "--pin", "1234", *extra],
                   env={**env.vars, **softhsm}, check=True, capture_output=True)


@pytest.mark.softhsm
def test_pkcs11_card_visible(env, softhsm):
    make_card(env, softhsm)
    env.config.write_text(ORIGINS + f'[pkcs11]\nmodule = "{SOFTHSM}"\n')
    code, checks = env.doctor("--browser", "chromium", "--no-self-test", env=softhsm)
    check = only(checks, "PKCS#11", "ok")
    assert check["detail"]["token"] == "DOCTOR CARD" and "certificate and key" in check["message"]


@pytest.mark.softhsm
def test_pkcs11_no_card_then_wrong_label(env, softhsm):
    env.config.write_text(ORIGINS + f'[pkcs11]\nmodule = "{SOFTHSM}"\n')
    code, checks = env.doctor("--browser", "chromium", "--no-self-test", env=softhsm)
    assert "insert the smartcard" in only(checks, "PKCS#11", "warn")["fix"]
    make_card(env, softhsm)
    env.config.write_text(ORIGINS + f'[pkcs11]\nmodule = "{SOFTHSM}"\ntoken_label = "OTHER CARD"\n')
    code, checks = env.doctor("--browser", "chromium", "--no-self-test", env=softhsm)
    assert "token_label" in only(checks, "PKCS#11", "fail")["fix"]


@pytest.mark.softhsm
def test_pkcs11_locked_card(env, softhsm):
    make_card(env, softhsm, "--locked")
    env.config.write_text(ORIGINS + f'[pkcs11]\nmodule = "{SOFTHSM}"\n')
    code, checks = env.doctor("--browser", "chromium", "--no-self-test", env=softhsm)
    assert "locked" in only(checks, "PKCS#11", "fail")["message"]


@pytest.mark.softhsm
def test_pkcs11_token_without_certificate(env, softhsm):
    subprocess.run(["softhsm2-util", "--init-token", "--free", "--label", "EMPTY", "--so-pin", "87654321",
                    "--pin", "1234"], env={**env.vars, **softhsm}, check=True, capture_output=True)
    env.config.write_text(ORIGINS + f'[pkcs11]\nmodule = "{SOFTHSM}"\n')
    code, checks = env.doctor("--browser", "chromium", "--no-self-test", env=softhsm)
    assert "no certificate" in only(checks, "PKCS#11", "fail")["message"]


# ------------------------------------------------------------------ GAS over TLS

def _certificate(tmp_path: Path) -> tuple[Path, Path]:
    from cryptography import x509
    from cryptography.hazmat.primitives import hashes, serialization
    from cryptography.hazmat.primitives.asymmetric import ec
    from cryptography.x509.oid import NameOID

    key = ec.generate_private_key(ec.SECP256R1())
    name = x509.Name([x509.NameAttribute(NameOID.COMMON_NAME, "localhost")])
    now = datetime.datetime.now(datetime.timezone.utc)
    cert = (x509.CertificateBuilder().subject_name(name).issuer_name(name).public_key(key.public_key())
            .serial_number(x509.random_serial_number()).not_valid_before(now - datetime.timedelta(minutes=5))
            .not_valid_after(now + datetime.timedelta(days=1))
            .add_extension(x509.SubjectAlternativeName([x509.DNSName("localhost")]), critical=False)
            .add_extension(x509.BasicConstraints(ca=True, path_length=None), critical=True)
            .sign(key, hashes.SHA256()))
    cert_file, key_file = tmp_path / "gas.pem", tmp_path / "gas.key"
    cert_file.write_bytes(cert.public_bytes(serialization.Encoding.PEM))
    key_file.write_bytes(key.private_bytes(serialization.Encoding.PEM, serialization.PrivateFormat.PKCS8,
                                           serialization.NoEncryption()))
    return cert_file, key_file


@pytest.fixture
def tls_server(tmp_path):
    cert_file, key_file = _certificate(tmp_path)
    context = ssl.SSLContext(ssl.PROTOCOL_TLS_SERVER)
    context.load_cert_chain(cert_file, key_file)
    listener = socket.create_server(("127.0.0.1", 0))
    port = listener.getsockname()[1]
    stop = threading.Event()

    def serve():
        listener.settimeout(0.2)
        while not stop.is_set():
            try:
                conn, _ = listener.accept()
            except OSError:
                continue
            try:
                with context.wrap_socket(conn, server_side=True) as tls:
                    tls.recv(1)
            except (OSError, ssl.SSLError):
                pass

    thread = threading.Thread(target=serve, daemon=True)
    thread.start()
    yield {"url": f"https://localhost:{port}", "ca": cert_file}
    stop.set()
    thread.join()
    listener.close()


def test_gas_reachable_with_the_configured_ca(env, tls_server):
    env.config.write_text(ORIGINS + f'[agent]\nkind = "gas"\nurl = "{tls_server["url"]}"\nca_file = "{tls_server["ca"]}"\n')
    code, checks = env.doctor("--browser", "chromium", "--no-self-test")
    assert "verified against" in only(checks, "agent (GAS)", "ok")["message"]


def test_gas_with_an_untrusted_certificate(env, tls_server):
    env.config.write_text(ORIGINS + f'[agent]\nkind = "gas"\nurl = "{tls_server["url"]}"\n')
    code, checks = env.doctor("--browser", "chromium", "--no-self-test")
    assert "ca_file" in only(checks, "agent (GAS)", "fail")["fix"]


def test_gas_unreachable_and_missing_ca_file(env, tmp_path):
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        port = s.getsockname()[1]  # closed again: nobody listens there
    env.config.write_text(ORIGINS + f'[agent]\nkind = "gas"\nurl = "https://localhost:{port}"\n')
    code, checks = env.doctor("--browser", "chromium", "--no-self-test")
    assert "unreachable" in only(checks, "agent (GAS)", "fail")["message"]
    env.config.write_text(ORIGINS + f'[agent]\nkind = "gas"\nurl = "https://localhost:{port}"\nca_file = "{tmp_path}/none.pem"\n')
    code, checks = env.doctor("--browser", "chromium", "--no-self-test")
    assert "not found" in only(checks, "agent (GAS)", "fail")["message"]


# ------------------------------------------------------------------ Ticket API

@pytest.fixture(scope="module")
def fake_ticketapi(tmp_path_factory):
    gcc = shutil.which("gcc")
    if gcc is None:
        pytest.fail("gcc is needed to build the fake Ticket API library")
    out = tmp_path_factory.mktemp("ticketapi") / "libfake_ticketapi.so"
    subprocess.run([gcc, "-shared", "-fPIC", "-O1", "-fvisibility=hidden", "-o", str(out),
                    str(REPO / "tests/ticketapi/fake_ticketapi.c")], check=True)
    return out


def test_ticketapi_library_loadable(env, fake_ticketapi, tmp_path):
    script = tmp_path / "script.txt"
    script.write_text("")
    env.config.write_text(ORIGINS + f'[agent]\nkind = "ticketapi"\nlibrary = "{fake_ticketapi}"\n')
    code, checks = env.doctor("--browser", "chromium", "--no-self-test",
                              env={"FAKE_TICKETAPI_SCRIPT": str(script), "FAKE_TICKETAPI_LOG": str(tmp_path / "log")})
    assert "NHS Ticket API loaded" in only(checks, "agent", "ok")["message"]


def test_ticketapi_library_missing(env, tmp_path):
    env.config.write_text(ORIGINS + f'[agent]\nkind = "ticketapi"\nlibrary = "{tmp_path}/TicketApiDll.dll"\n')
    code, checks = env.doctor("--browser", "chromium", "--no-self-test")
    assert "Identity Agent" in only(checks, "agent", "fail")["fix"]
