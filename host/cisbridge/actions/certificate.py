"""getCertificate: the card's certificate, base64 DER plus what people read in it.

No passcode is needed: certificates are public objects on the card.
"""

from __future__ import annotations

import base64
import functools

from cisbridge import protocol as p
from cisbridge.card import get_card


async def get_certificate(ctx, params: p.NoParams) -> p.Certificate:
    card = get_card(ctx)
    der = await ctx.run_blocking(card.certificate)
    return describe(der)


@functools.lru_cache(maxsize=8)
def describe(der: bytes) -> p.Certificate:
    """The wire ``Certificate`` for a DER certificate.

    Names are RFC 4514 strings (most specific first, e.g.
    ``CN=555012345678,OU=people,O=nhs``); the serial number is lower-case hex;
    validity is ISO 8601 in UTC with a ``Z``.
    """
    from cryptography import x509

    try:
        cert = x509.load_der_x509_certificate(der)
    except ValueError:
        raise p.CisError(p.ErrorCode.NO_CERTIFICATE,
                         "The certificate on the card cannot be read: it is not a valid X.509 certificate.") from None
    serial = format(cert.serial_number, "x")
    return p.Certificate(
        certificate=base64.b64encode(der).decode("ascii"),
        subject=cert.subject.rfc4514_string(),
        issuer=cert.issuer.rfc4514_string(),
        serialNumber=serial if len(serial) % 2 == 0 else "0" + serial,
        notBefore=_iso(cert.not_valid_before_utc),
        notAfter=_iso(cert.not_valid_after_utc),
    )


def _iso(moment) -> str:
    return moment.strftime("%Y-%m-%dT%H:%M:%SZ")
