"""Test smartcards on SoftHSM2, shaped like NHS cards (SPINE.md §7).

A test card is a SoftHSM2 token holding a non-extractable RSA-2048 key pair
and a certificate with the same ``CKA_ID``: subject ``O=nhs, OU=people,
CN=<12-digit UUID>``, issued by the project's test CA (``cisbridge.testca``),
which the GAS simulator trusts.

SoftHSM's store is chosen by ``SOFTHSM2_CONF``.  Without ``--softhsm-conf`` or
that variable, cards go to a store of cisbridge's own in the user data dir
(never the system store).

Locked cards: SoftHSM 2.6 keeps the token flags in its store (``token.object``,
attribute ``CKA_OS_TOKENFLAGS``) and reports them in ``C_GetTokenInfo``.  It
sets ``CKF_USER_PIN_COUNT_LOW`` after a wrong PIN and clears it after a right
one, but never sets ``CKF_USER_PIN_FINAL_TRY`` or ``CKF_USER_PIN_LOCKED`` and
never refuses a login for them: it does not count tries.  So ``--locked``
writes ``CKF_USER_PIN_LOCKED`` into the stored flags (:func:`set_pin_flags`).
The token then says it is locked, exactly as a locked card does; a host that
tried the passcode anyway would still be let in, which is what makes "never
try a locked card" testable.

SoftHSM reads its store at ``C_Initialize``: a process that already loaded it
does not see tokens made (or flags written) since, so this module
re-initialises the module in this process after each change.
"""

from __future__ import annotations

import hashlib
import os
import secrets
import shutil
import struct
import subprocess
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from cisbridge.card import softhsm_module

# SoftHSM object store: vendor attributes of token.object (src/lib/object_store/OSAttributes.h)
_CKA_OS_TOKENLABEL = 0x80005349
_CKA_OS_TOKENFLAGS = 0x8000534B
# PKCS#11 token flags
CKF_USER_PIN_COUNT_LOW = 0x00010000
CKF_USER_PIN_FINAL_TRY = 0x00020000
CKF_USER_PIN_LOCKED = 0x00040000
CKF_PROTECTED_AUTHENTICATION_PATH = 0x00000100

LABEL_PREFIX = "cisbridge test "


@dataclass
class TestCard:
    __test__ = False  # not a pytest class

    label: str
    uuid: str
    pin: str
    so_pin: str
    serial: str
    softhsm_conf: str
    certificate: Any  # cryptography x509.Certificate
    key_id: bytes

    def __repr__(self) -> str:  # passcodes stay out of logs and tracebacks
        return f"TestCard(label={self.label!r}, uuid={self.uuid!r}, serial={self.serial!r})"


# ---------------------------------------------------------------- the store


def default_store() -> Path:
    import platformdirs

    return Path(platformdirs.user_data_dir("cisbridge")) / "softhsm"


def make_store(directory: str | os.PathLike) -> str:
    """Create a private SoftHSM store in ``directory``; returns its config file."""
    directory = Path(directory)
    (directory / "tokens").mkdir(parents=True, exist_ok=True)
    conf = directory / "softhsm2.conf"
    if not conf.exists():
        conf.write_text(
            f"directories.tokendir = {directory / 'tokens'}\n"
            "objectstore.backend = file\n"
            "log.level = ERROR\n"
        )
    return str(conf)


def use_store(conf: str | None = None) -> str:
    """Point this process (and the tools it starts) at a SoftHSM store.

    ``conf``, else ``$SOFTHSM2_CONF``, else cisbridge's own user store.
    """
    conf = conf or os.environ.get("SOFTHSM2_CONF") or make_store(default_store())
    conf = str(Path(conf).resolve())
    if not os.path.exists(conf):
        raise SystemExit(f"SoftHSM config {conf} does not exist")
    if os.environ.get("SOFTHSM2_CONF") != conf or _read_conf != conf:
        os.environ["SOFTHSM2_CONF"] = conf
        reload_module()
    return conf


#: the store SoftHSM last read in this process (when this module made it read one)
_read_conf: str | None = None


def reload_module(module: str | None = None) -> None:
    """Make SoftHSM, if loaded in this process, read its store again.

    Every session opened on it before is gone afterwards.
    """
    import pkcs11

    module = module or softhsm_module()
    loaded = getattr(pkcs11, "_loaded", {}).get(module)
    if loaded is not None and loaded.initialized:
        loaded.reinitialize()
    global _read_conf
    _read_conf = os.environ.get("SOFTHSM2_CONF")


def _tokendir(conf: str) -> Path:
    for line in Path(conf).read_text().splitlines():
        key, _, value = line.partition("=")
        if key.strip() == "directories.tokendir":
            return Path(value.strip())
    raise ValueError(f"{conf} names no directories.tokendir")


def _softhsm_util(*args: str, conf: str) -> subprocess.CompletedProcess:
    tool = shutil.which("softhsm2-util")
    if tool is None:
        raise SystemExit("softhsm2-util is not installed (Debian/Ubuntu: apt-get install softhsm2)")
    env = dict(os.environ, SOFTHSM2_CONF=conf)
    result = subprocess.run([tool, *args], env=env, capture_output=True, text=True, timeout=60)
    if result.returncode != 0:
        raise RuntimeError(f"softhsm2-util {args[0]} failed: {(result.stderr or result.stdout).strip()}")
    return result


# ------------------------------------------------------------------ cards


def new_uuid() -> str:
    """A 12-digit card holder UUID (the CN of an NHS card's certificate)."""
    return str(secrets.randbelow(9 * 10**11) + 10**11)


def create(
    *,
    label: str | None = None,
    pin: str | None = None,
    so_pin: str | None = None,
    uuid: str | None = None,
    display_name: str | None = None,
    softhsm_conf: str | None = None,
    locked: bool = False,
    with_certificate: bool = True,
    ca: Any = None,
) -> TestCard:
    """Make a test card: token, RSA-2048 key pair, certificate from the test CA."""
    import pkcs11
    from cryptography.hazmat.primitives.asymmetric import rsa
    from pkcs11 import Attribute, KeyType

    conf = use_store(softhsm_conf)
    uuid = uuid or new_uuid()
    if not (len(uuid) == 12 and uuid.isdigit()):
        raise ValueError(f"a card UUID is 12 digits, not {uuid!r}")
    label = label or f"{LABEL_PREFIX}{uuid}"
    if len(label.encode()) > 32:
        raise ValueError(f"a token label is at most 32 bytes: {label!r}")
    pin = pin or f"{secrets.randbelow(10**6):06d}"
    so_pin = so_pin or secrets.token_hex(8)
    if ca is None and with_certificate:
        from cisbridge import testca

        ca = testca.load_or_create()

    _softhsm_util("--init-token", "--free", "--label", label, "--so-pin", so_pin, "--pin", pin, conf=conf)
    module = softhsm_module()
    reload_module(module)
    lib = pkcs11.lib(module)
    token = lib.get_token(token_label=label)
    certificate = None
    with token.open(rw=True, user_pin=pin) as session:
        public, private = session.generate_keypair(
            KeyType.RSA,
            2048,
            store=True,
            label=label,
            public_template={Attribute.TOKEN: True, Attribute.PRIVATE: False, Attribute.VERIFY: True},
            private_template={
                Attribute.TOKEN: True,
                Attribute.PRIVATE: True,
                Attribute.SENSITIVE: True,
                Attribute.EXTRACTABLE: False,
                Attribute.SIGN: True,
            },
        )
        modulus = int.from_bytes(public[Attribute.MODULUS], "big")
        exponent = int.from_bytes(public[Attribute.PUBLIC_EXPONENT], "big")
        # CKA_ID: SHA-1 of the modulus, as card middleware usually does.
        key_id = hashlib.sha1(public[Attribute.MODULUS]).digest()
        public[Attribute.ID] = key_id
        private[Attribute.ID] = key_id
        if with_certificate:
            public_key = rsa.RSAPublicNumbers(exponent, modulus).public_key()
            certificate = ca.issue_card_certificate(public_key, uuid, display_name)
            store_certificate(session, certificate, key_id, label)
    if locked:
        set_pin_flags(label, locked=True, softhsm_conf=conf)
    return TestCard(
        label=label,
        uuid=uuid,
        pin=pin,
        so_pin=so_pin,
        serial=token.serial.decode("ascii", "replace"),
        softhsm_conf=conf,
        certificate=certificate,
        key_id=key_id,
    )


def store_certificate(session: Any, certificate: Any, key_id: bytes, label: str) -> None:
    from cryptography.hazmat.primitives.serialization import Encoding
    from pkcs11 import Attribute, CertificateType, ObjectClass

    der = certificate.public_bytes(Encoding.DER)
    serial = certificate.serial_number
    serial_der = _der_integer(serial)
    session.create_object({
        Attribute.CLASS: ObjectClass.CERTIFICATE,
        Attribute.CERTIFICATE_TYPE: CertificateType.X_509,
        Attribute.TOKEN: True,
        Attribute.PRIVATE: False,
        Attribute.LABEL: label,
        Attribute.ID: key_id,
        Attribute.SUBJECT: certificate.subject.public_bytes(),
        Attribute.ISSUER: certificate.issuer.public_bytes(),
        Attribute.SERIAL_NUMBER: serial_der,
        Attribute.VALUE: der,
    })


def _der_integer(value: int) -> bytes:
    body = value.to_bytes(value.bit_length() // 8 + 1, "big")
    if len(body) < 128:
        return b"\x02" + bytes([len(body)]) + body
    length = len(body).to_bytes((len(body).bit_length() + 7) // 8, "big")
    return b"\x02" + bytes([0x80 | len(length)]) + length + body


def list_cards(softhsm_conf: str | None = None) -> list[dict[str, Any]]:
    """Every initialised token in the store: label, serial, UUID, flags."""
    import pkcs11
    from pkcs11 import Attribute, ObjectClass, TokenFlag

    use_store(softhsm_conf)
    lib = pkcs11.lib(softhsm_module())
    cards = []
    for slot in lib.get_slots(token_present=True):
        token = slot.get_token()
        if not token.flags & TokenFlag.TOKEN_INITIALIZED:
            continue
        uuid = subject = None
        with token.open() as session:
            for cert in session.get_objects({Attribute.CLASS: ObjectClass.CERTIFICATE}):
                from cryptography import x509
                from cryptography.x509.oid import NameOID

                parsed = x509.load_der_x509_certificate(bytes(cert[Attribute.VALUE]))
                subject = parsed.subject.rfc4514_string()
                cns = parsed.subject.get_attributes_for_oid(NameOID.COMMON_NAME)
                uuid = cns[0].value if cns else None
                break
        flags = token.flags
        cards.append({
            "label": token.label,
            "serial": token.serial.decode("ascii", "replace"),
            "uuid": uuid,
            "subject": subject,
            "locked": bool(flags & TokenFlag.USER_PIN_LOCKED),
            "finalTry": bool(flags & TokenFlag.USER_PIN_FINAL_TRY),
        })
    return cards


def delete(label: str, softhsm_conf: str | None = None) -> None:
    conf = use_store(softhsm_conf)
    _softhsm_util("--delete-token", "--token", label, conf=conf)
    reload_module()


def set_pin_flags(
    label: str,
    *,
    locked: bool | None = None,
    final_try: bool | None = None,
    count_low: bool | None = None,
    protected_path: bool | None = None,
    softhsm_conf: str | None = None,
) -> int:
    """Set or clear the user-PIN flags SoftHSM stores for token ``label``.

    Returns the new flags.  See the module doc for why this is needed.
    ``protected_path`` makes the token claim a PIN pad; SoftHSM has none, so
    its logins then fail: only the prompt side can be tested with it.
    """
    conf = softhsm_conf or os.environ["SOFTHSM2_CONF"]
    wanted = {
        CKF_USER_PIN_LOCKED: locked,
        CKF_USER_PIN_FINAL_TRY: final_try,
        CKF_USER_PIN_COUNT_LOW: count_low,
        CKF_PROTECTED_AUTHENTICATION_PATH: protected_path,
    }
    for path in sorted(_tokendir(conf).glob("*/token.object")):
        data = bytearray(path.read_bytes())
        attributes = _parse_object_file(data)
        stored_label = attributes.get(_CKA_OS_TOKENLABEL)
        if stored_label is None or bytes(data[stored_label[0]:stored_label[1]]).rstrip(b" ").decode() != label:
            continue
        start, end = attributes[_CKA_OS_TOKENFLAGS]
        (flags,) = struct.unpack(">Q", data[start:end])
        for bit, on in wanted.items():
            if on is True:
                flags |= bit
            elif on is False:
                flags &= ~bit
        data[start:end] = struct.pack(">Q", flags)
        path.write_bytes(bytes(data))
        reload_module()
        return flags
    raise LookupError(f"no SoftHSM token labelled {label!r} in {conf}")


def _parse_object_file(data: bytearray) -> dict[int, tuple[int, int]]:
    """attribute type -> (start, end) of its value in a SoftHSM ObjectFile.

    Layout (src/lib/object_store/ObjectFile.cpp): an 8-byte generation, then
    per attribute a big-endian u64 type, u64 kind (1 bool: 1 byte; 2 ulong:
    8 bytes; 3 byte string: u64 length + bytes) and the value.  A token's
    object holds only those kinds (label, serial, flags, wrapped PIN keys).
    """
    found: dict[int, tuple[int, int]] = {}
    i = 8
    while i + 16 <= len(data):
        typ, kind = struct.unpack(">QQ", data[i:i + 16])
        i += 16
        if kind == 1:
            found[typ] = (i, i + 1)
            i += 1
        elif kind == 2:
            found[typ] = (i, i + 8)
            i += 8
        elif kind == 3:
            (length,) = struct.unpack(">Q", data[i:i + 8])
            i += 8
            found[typ] = (i, i + length)
            i += length
        else:
            raise ValueError(f"unexpected SoftHSM attribute kind {kind}: store format changed?")
    return found
