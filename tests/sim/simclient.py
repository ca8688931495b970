"""A tiny GAS client and card for the simulator tests: they do the login
dance themselves, over real HTTP(S), the way an Identity Agent would."""

from __future__ import annotations

import base64
import http.client
import json
import secrets
import ssl
from dataclasses import dataclass
from pathlib import Path
from urllib.parse import quote, urlsplit

from cryptography.hazmat.primitives import hashes
from cryptography.hazmat.primitives.asymmetric import padding, rsa

from cisbridge.spine import gpobject
from cisbridge.spine.cms import build_signed_data
from cisbridge.spine.gpobject import Param

# Card holders in the simulator's built-in users file (host/cisbridge/data/sim_users.toml)
ONE_ROLE = "555000000001"
MANY_ROLES = "555000000002"
NO_ROLES = "555000000003"
TRAINEE = "555000000004"


@dataclass
class Card:
    uuid: str
    key: rsa.RSAPrivateKey
    certificate: object  # cryptography x509.Certificate

    def sign_challenge(self, challenge: bytes, **kwargs) -> str:
        """What the card login does: CKM_SHA1_RSA_PKCS wrapped as CMS SignedData, base64."""
        from cryptography.hazmat.primitives.serialization import Encoding

        der = build_signed_data(
            challenge, self.certificate.public_bytes(Encoding.DER),
            lambda data: self.key.sign(data, padding.PKCS1v15(), hashes.SHA1()), **kwargs)
        return base64.b64encode(der).decode("ascii")


class GasClient:
    """Just enough HTTP to drive the simulator the way an Identity Agent would."""

    def __init__(self, base_url: str, ca_file: Path | None = None, timeout: float = 10.0):
        self.url = urlsplit(base_url)
        self.ca_file = ca_file
        self.timeout = timeout

    def raw(self, method: str, target: str, body: bytes | None = None,
            headers: dict | None = None) -> tuple[int, bytes, dict]:
        if self.url.scheme == "https":
            ctx = ssl.create_default_context(cafile=str(self.ca_file))
            conn = http.client.HTTPSConnection(self.url.hostname, self.url.port,
                                               timeout=self.timeout, context=ctx)
        else:
            conn = http.client.HTTPConnection(self.url.hostname, self.url.port, timeout=self.timeout)
        try:
            conn.request(method, target, body=body, headers=headers or {})
            r = conn.getresponse()
            return r.status, r.read(), dict(r.getheaders())
        finally:
            conn.close()

    def post_gp(self, path: str, params) -> tuple[int, gpobject.GpObject]:
        status, body, _ = self.raw("POST", path, gpobject.encode(params), {
            "Content-Type": gpobject.CONTENT_TYPE,
            "User-Agent": "Mozilla/4.0(compatible;IE;GACv8.0.0.0)"})
        return status, gpobject.decode(body)

    def get(self, path: str, **query: str) -> tuple[int, bytes]:
        q = "&".join(f"{k}={quote(v, safe='')}" for k, v in query.items())
        status, body, _ = self.raw("GET", f"{path}?{q}" if q else path)
        return status, body

    def admin(self, path: str, data=None) -> dict:
        body = json.dumps(data).encode() if data is not None else None
        status, out, _ = self.raw("POST" if data is not None else "GET", path, body,
                                  {"Content-Type": "application/json"})
        assert status == 200, out
        return json.loads(out)

    # -- the login dance, step by step (SPINE.md §3)
    def activate(self) -> gpobject.GpObject:
        status, obj = self.post_gp("/login/authactivate", [
            ("auth_method", "3"), ("app_url", "NHST"),
            ("log_session_id", secrets.token_hex(5)),
            ("device_id", "cisbridge-test,ClientIP=127.0.0.1"), ("service", "ACTIVATION")])
        assert status == 200, obj
        return obj

    def validate(self, card: Card, activation: gpobject.GpObject, *, uid: str | None = None,
                 response: str | None = None) -> tuple[int, gpobject.GpObject]:
        challenge = activation["challenge"]
        return self.post_gp("/login/authvalidate", [
            Param("service", "AUTHENTICATION"),
            Param("challenge", challenge),
            Param("signature", activation["signature"]),
            Param("uid", uid or card.uuid),
            Param("card_type", "p11"),
            Param("response", response or card.sign_challenge(base64.b64decode(challenge)),
                  {"encoding": "base64"}),
            Param("mobility", "0"),
        ])

    def login(self, card: Card) -> gpobject.GpObject:
        status, obj = self.validate(card, self.activate())
        assert status == 200, obj
        return obj

    def select_role(self, ticket: str, role_id: str, ssb_mode: str = "0") -> tuple[int, bytes]:
        return self.get("/saml/RoleSelectionGP.jsp", token=ticket, selectedRoleUid=role_id,
                        ssbMode=ssb_mode, fallbackStatus="0", gacVersion="8.0.0.0")

    def logout(self, ticket: str, uid: str) -> tuple[int, gpobject.GpObject]:
        return self.post_gp("/login/authlogout", [
            ("service", "LOGOUT"), ("sso_ticket", ticket), ("uid", uid),
            ("log_session_id", "abcdefghij"), ("device_id", "cisbridge-test,ClientIP=127.0.0.1")])
