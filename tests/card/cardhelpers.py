"""Helpers shared by the card tests (a module of its own: tests/ has several conftest.py)."""

from __future__ import annotations

import asyncio
from typing import Any

from cryptography import x509
from cryptography.hazmat.primitives import hashes
from cryptography.hazmat.primitives.asymmetric import padding

from cisbridge.protocol import CisError, ErrorCode

ORIGIN = "https://ehr.example.nhs.uk"
PIN = "1234"


def verify(cert_der: bytes, signature: bytes, data: bytes, algorithm: str) -> None:
    """Raise unless ``signature`` is the certificate key's RSA PKCS#1 v1.5 signature of ``data``."""
    digest = hashes.SHA256() if algorithm == "RS256" else hashes.SHA1()
    x509.load_der_x509_certificate(cert_der).public_key().verify(signature, data, padding.PKCS1v15(), digest)


class ScriptedContext:
    """A RequestContext that answers prompts from a script: the test plays the user.

    answers: list of (kind, value) in the order the prompts must come;
    a value that is an exception is raised (e.g. the user cancels).
    """

    def __init__(self, card, answers=(), origin: str = ORIGIN):
        self.id = 1
        self.origin = origin
        self.card = card
        self.config = None
        self.answers = list(answers)
        self.prompts: list[tuple[str, Any]] = []

    async def prompt(self, kind: str, data: Any):
        self.prompts.append((kind, data))
        if not self.answers:
            raise AssertionError(f"unexpected {kind} prompt: {data}")
        expected, value = self.answers.pop(0)
        assert expected == kind, f"expected a {expected} prompt, got {kind}"
        if isinstance(value, BaseException):
            raise value
        return value

    async def run_blocking(self, fn, *args):
        return await asyncio.to_thread(fn, *args)

    def emit(self, event: str, data: Any) -> None:
        pass

    def kinds(self) -> list[str]:
        return [k for k, _ in self.prompts]


CANCEL = CisError(ErrorCode.USER_CANCELLED, "You cancelled.")


def run(coro):
    return asyncio.run(coro)
