"""sign: a batch of payloads (EPS SignedInfo) signed with the card's key.

Order, each step only if the one before succeeded: validate the whole request
(→ INVALID_REQUEST, before anyone is asked anything); ask for consent; ask for
the passcode and log in once for the whole batch; sign every payload.  A
payload the card fails to sign goes to ``failed_signatures``; the others are
still signed.  Shape compatible with NHS Credential Management (SPINE.md §6).
"""

from __future__ import annotations

import base64
import binascii

from cisbridge import protocol as p
from cisbridge.card import get_card
from cisbridge.card.auth import login_with_prompts
from cisbridge.protocol import CisError, ErrorCode

# Limits that keep the answer under the browsers' 1 MiB frame limit whatever
# the request holds (answer_bound() computes the worst case; a test checks it).
#: payloads per batch (an EPS batch is a prescriber's session: tens at most)
MAX_BATCH = 500
#: bytes per payload once decoded (an EPS SignedInfo is about 1 KiB)
MAX_PAYLOAD_BYTES = 64 * 1024
#: the largest signature answered: RSA-4096
MAX_SIGNATURE_BYTES = 512
#: the largest certificate answered (NHS card certificates are about 1.2 KiB)
MAX_CERTIFICATE_BYTES = 16 * 1024
#: the longest failure message put in failed_signatures
MAX_MESSAGE_CHARS = 200
#: worst-case JSON size of a 128-character id: every character a control
#: character escaped as \\u00XX (non-ASCII is sent as UTF-8, at most 4 bytes)
_MAX_ID_JSON = 128 * 6 + 2


def _b64len(n: int) -> int:
    return 4 * ((n + 2) // 3)


def answer_bound() -> int:
    """The largest response frame a valid sign request can produce, in bytes."""
    signature = len('{"id":,"signature":""},') + _MAX_ID_JSON + _b64len(MAX_SIGNATURE_BYTES)
    failed = len('{"id":,"code":"SIGNING_FAILED","message":""},') + _MAX_ID_JSON + MAX_MESSAGE_CHARS * 6
    envelope = (
        len('{"id":,"result":{"certificate":"","signatures":[],"failed_signatures":[],"algorithm":"RS256"}}')
        + _MAX_ID_JSON
        + _b64len(MAX_CERTIFICATE_BYTES)
    )
    return envelope + MAX_BATCH * max(signature, failed)


assert answer_bound() < p.MAX_OUTGOING, "sign limits would let an answer exceed 1 MiB"


def validate(params: p.SignParams) -> list[bytes]:
    """The decoded payloads, or CisError(INVALID_REQUEST) naming what is wrong."""
    items = params.payloads
    if not items:
        raise _invalid("payloads is empty: there is nothing to sign")
    if len(items) > MAX_BATCH:
        raise _invalid(f"too many payloads: {len(items)}, at most {MAX_BATCH} per request")
    seen: set[str] = set()
    decoded = []
    for index, item in enumerate(items):
        where = f"payloads[{index}] (id {item.id!r})"
        if item.id in seen:
            raise _invalid(f"{where}: the id is used twice; ids must be unique in a request")
        seen.add(item.id)
        if len(item.payload) > _b64len(MAX_PAYLOAD_BYTES):
            raise _invalid(f"{where}: payload larger than {MAX_PAYLOAD_BYTES} bytes")
        try:
            data = base64.b64decode(item.payload, validate=True)
        except (binascii.Error, ValueError):
            raise _invalid(f"{where}: payload is not valid base64") from None
        if len(data) > MAX_PAYLOAD_BYTES:
            raise _invalid(f"{where}: payload larger than {MAX_PAYLOAD_BYTES} bytes")
        decoded.append(data)
    return decoded


async def sign(ctx, params: p.SignParams) -> p.SignResult:
    payloads = validate(params)
    card = get_card(ctx)
    count = len(payloads)
    description = params.description or f"Sign {count} item{'s' if count != 1 else ''} with your smartcard"
    consent = await ctx.prompt("consent", p.ConsentPromptData(ctx.origin, description, count, params.algorithm))
    if consent is not True:
        raise CisError(ErrorCode.USER_CANCELLED, "Signing was not agreed to.")

    # An empty payload is well-formed but there is nothing to sign: it fails
    # on its own and the rest of the batch goes ahead.
    to_sign = [(item.id, data) for item, data in zip(params.payloads, payloads, strict=True) if data]
    failed = [
        p.FailedSignature(item.id, ErrorCode.SIGNING_FAILED, "The payload is empty: there is nothing to sign.")
        for item, data in zip(params.payloads, payloads, strict=True)
        if not data
    ]
    async with card.batch_lock:
        try:
            await login_with_prompts(ctx, card)
            outcomes = await ctx.run_blocking(card.sign_many, params.algorithm, [d for _, d in to_sign])
            certificate = await ctx.run_blocking(card.certificate)
        finally:
            await ctx.run_blocking(card.end_batch)

    if len(certificate) > MAX_CERTIFICATE_BYTES:
        raise CisError(ErrorCode.SIGNING_FAILED,
                       "The card's certificate is too large to send back to the browser.")
    signatures = []
    for (item_id, _), outcome in zip(to_sign, outcomes, strict=True):
        if isinstance(outcome, CisError):
            failed.append(p.FailedSignature(item_id, outcome.code, outcome.message[:MAX_MESSAGE_CHARS]))
        elif len(outcome) > MAX_SIGNATURE_BYTES:
            raise CisError(ErrorCode.SIGNING_FAILED,
                           f"The card's key is larger than cisbridge supports (RSA-{MAX_SIGNATURE_BYTES * 8}).")
        else:
            signatures.append(p.Signature(item_id, base64.b64encode(outcome).decode("ascii")))
    return p.SignResult(
        certificate=base64.b64encode(certificate).decode("ascii"),
        signatures=signatures,
        failed_signatures=failed,
        algorithm=params.algorithm,
    )


def _invalid(message: str) -> CisError:
    return CisError(ErrorCode.INVALID_REQUEST, message)
