"""CMS SignedData as a card login sends it (SPINE.md §3 step 2).

The client signs GAS's challenge on the card with ``CKM_SHA1_RSA_PKCS`` and wraps
the result as CMS SignedData (PKCS#7): digest sha1, signature algorithm
rsaEncryption, the card certificate included.  :func:`build_signed_data` takes
the signing as a callable so the private key can stay on the card;
:func:`verify_signed_data` is what GAS (here, the simulator) checks.

Built with asn1crypto: cryptography's PKCS7 builder refuses sha1, which the
protocol requires.
"""

from __future__ import annotations

import datetime as dt
import hashlib
from typing import Callable

#: what ``sign`` must compute: RSA PKCS#1 v1.5 over sha1 of the bytes it is given
#: (PKCS#11 ``CKM_SHA1_RSA_PKCS``).
SignFunction = Callable[[bytes], bytes]


class CmsError(ValueError):
    """A SignedData could not be built, or does not verify; the message says why."""


def build_signed_data(
    content: bytes,
    certificate_der: bytes,
    sign: SignFunction,
    *,
    detached: bool = False,
    signed_attributes: bool = True,
    signing_time: dt.datetime | None = None,
) -> bytes:
    """DER ContentInfo(SignedData) over ``content``, signed by ``sign``.

    With ``signed_attributes`` (the usual CMS form) ``sign`` receives the DER
    of the attribute set (contentType, signingTime, messageDigest); without,
    it receives ``content`` itself.
    """
    from asn1crypto import algos, cms, core, x509

    try:
        certificate = x509.Certificate.load(certificate_der)
        _ = certificate.native  # parse eagerly so a bad certificate fails here
    except Exception as exc:
        raise CmsError(f"the certificate is not valid DER: {exc}") from None

    signer = {
        "version": "v1",
        "sid": cms.SignerIdentifier({
            "issuer_and_serial_number": cms.IssuerAndSerialNumber({
                "issuer": certificate.issuer,
                "serial_number": certificate.serial_number,
            })
        }),
        "digest_algorithm": algos.DigestAlgorithm({"algorithm": "sha1"}),
        "signature_algorithm": algos.SignedDigestAlgorithm({"algorithm": "rsassa_pkcs1v15"}),
    }
    if signed_attributes:
        when = signing_time or dt.datetime.now(dt.timezone.utc)
        attrs = [
            cms.CMSAttribute({"type": "content_type", "values": ["data"]}),
            cms.CMSAttribute({"type": "signing_time", "values": [cms.Time({"utc_time": when})]}),
            cms.CMSAttribute({"type": "message_digest", "values": [hashlib.sha1(content).digest()]}),
        ]
        # DER orders a SET OF by encoding; verifiers that re-encode (OpenSSL) need it.
        attrs.sort(key=lambda a: a.dump())
        signed_attrs = cms.CMSAttributes(attrs)
        to_sign = signed_attrs.dump()
        signer["signed_attrs"] = signed_attrs
    else:
        to_sign = content
    signer["signature"] = core.OctetString(sign(to_sign))

    encap = {"content_type": "data"}
    if not detached:
        encap["content"] = content
    signed_data = cms.SignedData({
        "version": "v1",
        "digest_algorithms": [algos.DigestAlgorithm({"algorithm": "sha1"})],
        "encap_content_info": cms.ContentInfo(encap),
        "certificates": [cms.CertificateChoices({"certificate": certificate})],
        "signer_infos": [cms.SignerInfo(signer)],
    })
    return cms.ContentInfo({"content_type": "signed_data", "content": signed_data}).dump()


def verify_signed_data(der: bytes, content: bytes):
    """Check ``der`` is a SignedData by its included certificate over ``content``.

    Accepts the content encapsulated (it must equal ``content``) or detached,
    with or without signed attributes; requires sha1 and an RSA signature.
    Returns the signer's ``cryptography.x509.Certificate``; whether that
    certificate is trusted is the caller's question.
    """
    from asn1crypto import cms
    from cryptography import x509
    from cryptography.exceptions import InvalidSignature
    from cryptography.hazmat.primitives import hashes
    from cryptography.hazmat.primitives.asymmetric import padding, rsa

    try:
        info = cms.ContentInfo.load(der, strict=True)
        if info["content_type"].native != "signed_data":
            raise CmsError(f"the CMS holds {info['content_type'].native}, not signed_data")
        signed = info["content"]
        signer_infos = signed["signer_infos"]
        if len(signer_infos) != 1:
            raise CmsError(f"expected one signer, found {len(signer_infos)}")
        signer = signer_infos[0]
        encap = signed["encap_content_info"]
        if encap["content_type"].native != "data":
            raise CmsError("the signed content type is not data")
        embedded = encap["content"].native if encap["content"] else None
        if embedded is not None and embedded != content:
            raise CmsError("the signed content is not the challenge")
        digest_alg = signer["digest_algorithm"]["algorithm"].native
        if digest_alg != "sha1":
            raise CmsError(f"the digest algorithm is {digest_alg}, expected sha1")
        sig_alg = signer["signature_algorithm"]["algorithm"].native
        if sig_alg not in ("rsassa_pkcs1v15", "sha1_rsa"):
            raise CmsError(f"the signature algorithm is {sig_alg}, expected rsaEncryption")
        certificate = _signer_certificate(signed, signer["sid"])
        signature = signer["signature"].native
        attrs = signer["signed_attrs"]
        if attrs:
            found = {a["type"].native: a["values"] for a in attrs}
            digest = found.get("message_digest")
            if digest is None or len(digest) != 1:
                raise CmsError("the signed attributes have no message digest")
            if digest[0].native != hashlib.sha1(content).digest():
                raise CmsError("the message digest does not match the challenge")
            ctype = found.get("content_type")
            if ctype is None or ctype[0].native != "data":
                raise CmsError("the signed attributes' content type is not data")
            # The signature covers the attributes as an explicit SET (tag 0x31),
            # not as the [0] IMPLICIT field they are sent in.
            raw = attrs.dump()
            signed_bytes = b"\x31" + raw[1:]
        else:
            signed_bytes = content
    except CmsError:
        raise
    except Exception as exc:  # asn1crypto raises many types on junk
        raise CmsError(f"the response is not a valid CMS SignedData ({type(exc).__name__})") from None

    try:
        cert = x509.load_der_x509_certificate(certificate)
    except ValueError:
        raise CmsError("the signer certificate cannot be read") from None
    key = cert.public_key()
    if not isinstance(key, rsa.RSAPublicKey):
        raise CmsError("the signer certificate does not hold an RSA key")
    try:
        key.verify(signature, signed_bytes, padding.PKCS1v15(), hashes.SHA1())
    except InvalidSignature:
        raise CmsError("the signature does not verify with the included certificate") from None
    return cert


def _signer_certificate(signed, sid) -> bytes:
    certs = [c.chosen for c in (signed["certificates"] or []) if c.name == "certificate"]
    if not certs:
        raise CmsError("the SignedData does not include the signer's certificate")
    if sid.name == "issuer_and_serial_number":
        want = sid.chosen
        for c in certs:
            if (c.issuer == want["issuer"]
                    and c.serial_number == want["serial_number"].native):
                return c.dump()
    else:
        for c in certs:
            if c.key_identifier == sid.chosen.native:
                return c.dump()
    raise CmsError("none of the included certificates is the signer's")
