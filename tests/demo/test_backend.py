"""The demo EHR's back end checks what the page hands it, as a real EHR server
must: tickets at the Spine (the simulator), signatures against the bytes it
issued, with a certificate from the CA it trusts, of the user who logged in.
Real parts: SoftHSM2 card, test CA, simulator over TLS, HTTP on loopback."""

from __future__ import annotations

import base64
import json
import urllib.error
import urllib.request

import pytest

from cisbridge import testca
from cisbridge.card import softhsm_module, testcard
from cisbridge.demo.backend import ApiError, Backend, DemoSession
from cisbridge.sim.server import Simulator

pytestmark = pytest.mark.softhsm

USER = "555000000002"


@pytest.fixture(scope="module")
def world(tmp_path_factory):
    base = tmp_path_factory.mktemp("demo-backend")
    ca = testca.load_or_create(base / "ca")
    card = testcard.create(uuid=USER, label="demo backend test", softhsm_conf=testcard.make_store(base / "hsm"), ca=ca)
    with Simulator(tls=True, ca=ca) as sim:
        backend = Backend(sim.url, str(sim.ca_file), ca.certificate).start()
        yield {"base": base, "ca": ca, "card": card, "sim": sim, "backend": backend}
        backend.stop()


def sign_on_card(card, data: bytes) -> bytes:
    import pkcs11
    from pkcs11 import Mechanism, ObjectClass

    token = pkcs11.lib(softhsm_module()).get_token(token_label=card.label)
    with token.open(user_pin=card.pin) as session:
        key = session.get_key(ObjectClass.PRIVATE_KEY)
        return key.sign(data, mechanism=Mechanism.SHA1_RSA_PKCS)


def der(certificate) -> str:
    from cryptography.hazmat.primitives.serialization import Encoding

    return base64.b64encode(certificate.public_bytes(Encoding.DER)).decode()


def issued(backend, uid: str = USER) -> tuple[DemoSession, dict[str, bytes]]:
    demo = DemoSession(ticket="unused", uid=uid)
    batch = backend.prescriptions(demo)
    return demo, {item["id"]: base64.b64decode(item["digest"]) for item in batch["items"]}


def result(certificate, signatures: dict[str, bytes]) -> dict:
    return {
        "algorithm": "RS1",
        "certificate": der(certificate),
        "signatures": [{"id": k, "signature": base64.b64encode(v).decode()} for k, v in signatures.items()],
        "failed_signatures": [],
    }


def test_the_batch_is_eps_shaped_signed_info(world):
    _, payloads = issued(world["backend"])
    assert len(payloads) == 3
    for data in payloads.values():
        assert data.startswith(b'<SignedInfo xmlns="http://www.w3.org/2000/09/xmldsig#">')
        assert b"xmldsig#rsa-sha1" in data


def test_card_signatures_over_the_issued_payloads_verify(world):
    demo, payloads = issued(world["backend"])
    signatures = {rx: sign_on_card(world["card"], data) for rx, data in payloads.items()}
    checked = world["backend"].verify(demo, result(world["card"].certificate, signatures))
    assert checked["results"] == [{"id": rx, "ok": True} for rx in payloads]


def test_a_signature_over_other_bytes_and_a_missing_one_fail(world):
    demo, payloads = issued(world["backend"])
    ids = list(payloads)
    signatures = {ids[0]: sign_on_card(world["card"], payloads[ids[0]]),
                  ids[1]: sign_on_card(world["card"], payloads[ids[1]] + b" ")}
    checked = world["backend"].verify(demo, result(world["card"].certificate, signatures))
    assert checked["results"] == [
        {"id": ids[0], "ok": True},
        {"id": ids[1], "ok": False, "message": "signature does not verify"},
        {"id": ids[2], "ok": False, "message": "not signed"},
    ]


def test_a_certificate_from_another_ca_is_refused(world):
    other_ca = testca.load_or_create(world["base"] / "other-ca")
    other = testcard.create(uuid=USER, label="demo other ca", softhsm_conf=world["card"].softhsm_conf, ca=other_ca)
    demo, payloads = issued(world["backend"])
    signatures = {rx: sign_on_card(other, data) for rx, data in payloads.items()}
    with pytest.raises(ApiError, match="not from the card CA") as caught:
        world["backend"].verify(demo, result(other.certificate, signatures))
    assert caught.value.status == 403


def test_another_users_certificate_is_refused(world):
    demo, payloads = issued(world["backend"], uid="555000000001")
    signatures = {rx: sign_on_card(world["card"], data) for rx, data in payloads.items()}
    with pytest.raises(ApiError, match="not the logged-in user's"):
        world["backend"].verify(demo, result(world["card"].certificate, signatures))


def post(backend, path: str, body: dict) -> tuple[int, dict]:
    request = urllib.request.Request(f"{backend.origin}{path}", data=json.dumps(body).encode(),
                                     headers={"Content-Type": "application/json"})
    try:
        with urllib.request.urlopen(request, timeout=10) as response:
            return response.status, json.loads(response.read())
    except urllib.error.HTTPError as exc:
        return exc.code, json.loads(exc.read())


def test_a_ticket_the_spine_does_not_know_is_refused_at_login(world):
    fake = "AQIC5wM2LY4S" + "A" * 44 + "@AAJTSQACMDE=#"
    status, body = post(world["backend"], "/api/login", {"ticket": fake})
    assert status == 401
    assert "did not accept the ticket" in body["error"]
    assert fake not in body["error"]


def test_signing_needs_a_logged_in_session(world):
    status, body = post(world["backend"], "/api/prescriptions/verify", {})
    assert (status, body) == (401, {"error": "log in first"})
