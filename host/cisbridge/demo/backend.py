"""The demo EHR: one page and the small back end behind it, on loopback.

The back end does what a real EHR server must do with what the page hands it
(docs/server.md, docs/signing.md): it never takes a ticket on trust but asks
the Spine (here the simulator) whether the session is live and which role it
carries; it issues the SignedInfo payloads to sign itself and verifies each
returned signature against the returned certificate, after checking that the
certificate was issued by the CA it trusts to the user who logged in.
"""

from __future__ import annotations

import base64
import hashlib
import json
import logging
import secrets
import threading
from dataclasses import dataclass, field
from http.cookies import SimpleCookie
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from importlib import resources
from typing import Any

log = logging.getLogger("cisbridge.demo.backend")

COOKIE = "demo_session"
MAX_BODY = 256 * 1024

#: made-up prescriptions: (id, patient, medication)
PRESCRIPTIONS = [
    ("rx-1", "Jane SMITH (999 000 0001)", "Amoxicillin 500 mg capsules, 21"),
    ("rx-2", "Jane SMITH (999 000 0001)", "Paracetamol 500 mg tablets, 32"),
    ("rx-3", "Jane SMITH (999 000 0001)", "Salbutamol 100 mcg inhaler, 1"),
]

#: an EPS-shaped canonical XML-DSig SignedInfo (rsa-sha1, as EPS R2 uses)
SIGNED_INFO = (
    '<SignedInfo xmlns="http://www.w3.org/2000/09/xmldsig#">'
    '<CanonicalizationMethod Algorithm="http://www.w3.org/2001/10/xml-exc-c14n#"></CanonicalizationMethod>'
    '<SignatureMethod Algorithm="http://www.w3.org/2000/09/xmldsig#rsa-sha1"></SignatureMethod>'
    '<Reference><Transforms><Transform Algorithm="http://www.w3.org/2001/10/xml-exc-c14n#"></Transform></Transforms>'
    '<DigestMethod Algorithm="http://www.w3.org/2000/09/xmldsig#sha1"></DigestMethod>'
    "<DigestValue>{digest}</DigestValue></Reference></SignedInfo>"
)


def signed_info(rx_id: str, patient: str, medication: str, nonce: str) -> bytes:
    """The SignedInfo over one prescription (its digest stands for the FHIR bundle EPS would hash)."""
    bundle = f"{rx_id}|{patient}|{medication}|{nonce}".encode()
    digest = base64.b64encode(hashlib.sha1(bundle).digest()).decode()
    return SIGNED_INFO.format(digest=digest).encode()


@dataclass
class DemoSession:
    ticket: str
    uid: str
    batch: dict[str, bytes] = field(default_factory=dict)  # id -> SignedInfo bytes issued to sign


class Backend:
    """The demo EHR's HTTP server (page + JSON API) on 127.0.0.1."""

    def __init__(self, spine_url: str, ca_file: str | None, ca_certificate: Any, port: int = 0):
        self.spine_url = spine_url
        self.ca_file = ca_file
        self.ca_certificate = ca_certificate  # cryptography x509.Certificate of the card CA
        self.sessions: dict[str, DemoSession] = {}
        self.lock = threading.Lock()
        self.page = resources.files("cisbridge").joinpath("data/demo-ehr.html").read_bytes()
        backend = self

        class Handler(_Handler):
            pass

        Handler.backend = backend
        self.httpd = ThreadingHTTPServer(("127.0.0.1", port), Handler)
        self.httpd.daemon_threads = True
        self.thread = threading.Thread(target=self.httpd.serve_forever, name="demo-ehr", daemon=True)

    @property
    def origin(self) -> str:
        return f"http://127.0.0.1:{self.httpd.server_address[1]}"

    def start(self) -> "Backend":
        self.thread.start()
        return self

    def stop(self) -> None:
        self.httpd.shutdown()
        self.httpd.server_close()
        self.thread.join(5)

    # ------------------------------------------------------------ the API

    def login(self, body: dict) -> tuple[str, dict]:
        from cisbridge.spine.server import role_assertion, validate_ticket

        ticket = body.get("ticket")
        if not isinstance(ticket, str):
            raise ApiError(400, "send {ticket}")
        session = validate_ticket(ticket, self.spine_url, ca_file=self.ca_file, timeout=10)
        role = role_assertion(ticket, self.spine_url, ca_file=self.ca_file, timeout=10)
        if session.uid != role.uid:
            raise ApiError(403, "the session and the role assertion name different users")
        sid = secrets.token_urlsafe(24)
        with self.lock:
            self.sessions[sid] = DemoSession(ticket=ticket, uid=role.uid)
        user = {
            "uid": role.uid,
            "name": role.name,
            "role": job_role_name(role.job_role),
            "roleProfileId": role.role_profile_id,
            "org": role.org_name,
            "orgCode": role.org_code,
            "timeLeft": session.time_left,
        }
        return sid, user

    def prescriptions(self, demo: DemoSession) -> dict:
        nonce = secrets.token_hex(8)
        items = []
        batch = {}
        for rx_id, patient, medication in PRESCRIPTIONS:
            data = signed_info(rx_id, patient, medication, nonce)
            batch[rx_id] = data
            items.append({"id": rx_id, "patient": patient, "medication": medication,
                          "digest": base64.b64encode(data).decode()})
        with self.lock:
            demo.batch = batch
        return {"algorithm": "RS1", "description": f"{len(items)} prescriptions for Jane SMITH", "items": items}

    def verify(self, demo: DemoSession, body: dict) -> dict:
        from cryptography import x509
        from cryptography.exceptions import InvalidSignature
        from cryptography.hazmat.primitives import hashes
        from cryptography.hazmat.primitives.asymmetric import padding

        try:
            certificate = x509.load_der_x509_certificate(base64.b64decode(body["certificate"], validate=True))
            signatures = {s["id"]: base64.b64decode(s["signature"], validate=True) for s in body["signatures"]}
            algorithm = body["algorithm"]
        except (KeyError, TypeError, ValueError) as exc:
            raise ApiError(400, f"not a sign result: {exc}") from None
        hash_algorithm = {"RS1": hashes.SHA1(), "RS256": hashes.SHA256()}.get(algorithm)
        if hash_algorithm is None:
            raise ApiError(400, f"unknown algorithm {algorithm!r}")
        # The certificate must be the logged-in user's, from the CA we trust.
        try:
            certificate.verify_directly_issued_by(self.ca_certificate)
        except (ValueError, TypeError, InvalidSignature):
            raise ApiError(403, "the signing certificate is not from the card CA this EHR trusts") from None
        cn = certificate.subject.get_attributes_for_oid(x509.NameOID.COMMON_NAME)
        if not cn or cn[0].value != demo.uid:
            raise ApiError(403, "the signing certificate is not the logged-in user's")
        failed = {f.get("id"): f.get("message", "") for f in body.get("failed_signatures", []) if isinstance(f, dict)}
        results = []
        with self.lock:
            batch = dict(demo.batch)
        for rx_id, data in batch.items():
            signature = signatures.get(rx_id)
            if signature is None:
                results.append({"id": rx_id, "ok": False, "message": failed.get(rx_id, "not signed")})
                continue
            try:
                certificate.public_key().verify(signature, data, padding.PKCS1v15(), hash_algorithm)
                results.append({"id": rx_id, "ok": True})
            except InvalidSignature:
                results.append({"id": rx_id, "ok": False, "message": "signature does not verify"})
        signer = f"the certificate of {demo.uid}"
        return {"results": results, "signer": signer}

    def logout(self, sid: str | None) -> dict:
        from cisbridge.spine.server import InvalidTicket, TicketCheckError, validate_ticket

        with self.lock:
            demo = self.sessions.pop(sid, None) if sid else None
        if demo is None:
            return {}
        # Show that the session really ended at the Spine (the host logs out on card removal).
        try:
            validate_ticket(demo.ticket, self.spine_url, ca_file=self.ca_file, timeout=10, reset=False)
            spine = "The Spine session is still live (it ends when the card is removed)."
        except InvalidTicket:
            spine = "The Spine no longer accepts the ticket."
        except TicketCheckError as exc:
            spine = f"The Spine could not be asked: {exc}"
        return {"spine": spine}


def job_role_name(job_role: str) -> str:
    """ '"Clinical":"Clinical Provision":"Nurse Access Role"' -> 'Nurse Access Role' """
    return job_role.rsplit(":", 1)[-1].strip('"') if job_role else "?"


class ApiError(Exception):
    def __init__(self, status: int, message: str):
        super().__init__(message)
        self.status = status


class _Handler(BaseHTTPRequestHandler):
    backend: Backend
    server_version = "demo-ehr"

    def log_message(self, format: str, *args: Any) -> None:  # requests carry tickets: say little
        log.debug("%s %s", self.command, self.path.split("?", 1)[0])

    def _session_id(self) -> str | None:
        cookie = SimpleCookie(self.headers.get("Cookie", ""))
        return cookie[COOKIE].value if COOKIE in cookie else None

    def _session(self) -> DemoSession:
        with self.backend.lock:
            demo = self.backend.sessions.get(self._session_id() or "")
        if demo is None:
            raise ApiError(401, "log in first")
        return demo

    def _send(self, status: int, body: bytes, content_type: str, extra: dict[str, str] | None = None) -> None:
        self.send_response(status)
        self.send_header("Content-Type", content_type)
        self.send_header("Content-Length", str(len(body)))
        self.send_header("Cache-Control", "no-store")
        for k, v in (extra or {}).items():
            self.send_header(k, v)
        self.end_headers()
        self.wfile.write(body)

    def _json(self, status: int, data: dict, extra: dict[str, str] | None = None) -> None:
        self._send(status, json.dumps(data).encode(), "application/json", extra)

    def do_GET(self) -> None:  # noqa: N802
        path = self.path.split("?", 1)[0]
        try:
            if path in ("/", "/index.html"):
                self._send(200, self.backend.page, "text/html; charset=utf-8")
            elif path == "/api/prescriptions":
                self._json(200, self.backend.prescriptions(self._session()))
            else:
                self._json(404, {"error": "not found"})
        except ApiError as exc:
            self._json(exc.status, {"error": str(exc)})

    def do_POST(self) -> None:  # noqa: N802
        path = self.path.split("?", 1)[0]
        try:
            length = int(self.headers.get("Content-Length") or 0)
            if not 0 <= length <= MAX_BODY:
                raise ApiError(413, "request too large")
            try:
                body = json.loads(self.rfile.read(length) or b"{}")
            except ValueError:
                raise ApiError(400, "send JSON") from None
            if not isinstance(body, dict):
                raise ApiError(400, "send a JSON object")
            if path == "/api/login":
                sid, user = self.backend.login(body)
                self._json(200, user, {"Set-Cookie": f"{COOKIE}={sid}; HttpOnly; SameSite=Strict; Path=/"})
            elif path == "/api/prescriptions/verify":
                self._json(200, self.backend.verify(self._session(), body))
            elif path == "/api/logout":
                self._json(200, self.backend.logout(self._session_id()),
                           {"Set-Cookie": f"{COOKIE}=; Max-Age=0; Path=/"})
            else:
                self._json(404, {"error": "not found"})
        except ApiError as exc:
            self._json(exc.status, {"error": str(exc)})
        except Exception as exc:  # the Spine refused or could not answer: tell the page, in words
            from cisbridge.spine.server import TicketCheckError

            if isinstance(exc, TicketCheckError):
                self._json(401, {"error": f"the Spine did not accept the ticket: {exc}"})
            else:
                log.exception("demo back end failed")
                self._json(500, {"error": f"the demo back end failed: {type(exc).__name__}"})

