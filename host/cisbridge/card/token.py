"""The smartcard's PKCS#11 token: its certificate, its passcode and its key.

:class:`CardToken` is blocking (call it through ``ctx.run_blocking``) and
thread-safe: one lock serialises every call into the module.  It loads the
PKCS#11 module on first use, so making one costs nothing.

Which token: the one labelled ``[pkcs11] token_label`` when that is set, else
the one token that holds a certificate paired with a key (same ``CKA_ID``).
Private keys are usually private objects, invisible until login, so a public
key object with the certificate's ``CKA_ID`` counts as the pair too.

Passcodes: :meth:`CardToken.login` takes a ``bytearray`` and wipes it.  It is
handed to ``C_Login`` without an immutable copy (see :class:`_Passcode`).
Whether the login outlives a batch is ``reuse_login``'s choice; by default
:meth:`CardToken.end_batch` logs out, so every batch asks again.
"""

from __future__ import annotations

import hashlib
import threading
from dataclasses import dataclass
from typing import TYPE_CHECKING, Any

import pkcs11
from pkcs11 import Attribute, Mechanism, ObjectClass, TokenFlag
from pkcs11 import exceptions as p11

from cisbridge.protocol import CisError, ErrorCode

if TYPE_CHECKING:
    import asyncio

#: The config key people are pointed at when the module is the problem.
MODULE_KEY = "[pkcs11] module"
LABEL_KEY = "[pkcs11] token_label"

#: algorithm -> (combined mechanism, hash for the CKM_RSA_PKCS fallback, DigestInfo prefix)
ALGORITHMS: dict[str, tuple[Mechanism, str, bytes]] = {
    "RS1": (
        Mechanism.SHA1_RSA_PKCS,
        "sha1",
        bytes.fromhex("3021300906052b0e03021a05000414"),
    ),
    "RS256": (
        Mechanism.SHA256_RSA_PKCS,
        "sha256",
        bytes.fromhex("3031300d060960864801650304020105000420"),
    ),
}

#: Failures that mean the card (or its session) is gone, not that one item failed.
_CARD_GONE = (
    p11.DeviceRemoved,
    p11.TokenNotPresent,
    p11.TokenNotRecognised,
    p11.SessionHandleInvalid,
    p11.SessionClosed,
)


@dataclass(frozen=True)
class TokenStatus:
    """What the token says of itself right now (fresh ``C_GetTokenInfo``)."""

    label: str
    serial: str
    manufacturer: str
    model: str
    #: a PIN-pad reader collects the passcode itself
    protected_path: bool
    #: a wrong passcode was entered since the last right one
    pin_count_low: bool
    #: the next wrong passcode locks the card
    pin_final_try: bool
    pin_locked: bool
    #: this host holds a logged-in session on the token
    logged_in: bool = False

    @property
    def attempts_left(self) -> int | None:
        """Passcode tries left, when the token says (PKCS#11 only tells "one")."""
        if self.pin_locked:
            return 0
        if self.pin_final_try:
            return 1
        return None


@dataclass
class _Choice:
    token: Any  # pkcs11.Token, as read when chosen
    cert_der: bytes
    key_id: bytes
    mechanisms: frozenset


class _Passcode:
    """Hands the passcode to python-pkcs11 without making an immutable copy.

    ``Token.open(user_pin=x)`` calls ``x.encode("utf-8")`` and passes the
    result to ``C_Login``; Cython passes a ``bytearray``'s own buffer, so the
    bytes the card saw are the ones the caller wipes afterwards.
    """

    __slots__ = ("_buffer",)

    def __init__(self, buffer: bytearray):
        self._buffer = buffer

    def encode(self, *_args: Any) -> bytearray:
        return self._buffer

    def __repr__(self) -> str:
        return "<passcode>"


def wipe(buffer: bytearray | None) -> None:
    if buffer is not None:
        for i in range(len(buffer)):
            buffer[i] = 0


class CardToken:
    """One PKCS#11 module and the token chosen on it (see the module doc)."""

    def __init__(
        self,
        module: str,
        token_label: str | None = None,
        reuse_login: bool = False,
        *,
        disabled_mechanisms: tuple[Mechanism, ...] = (),
    ) -> None:
        self.module = module
        self.token_label = token_label or None
        self.reuse_login = reuse_login
        #: mechanisms treated as absent even if the token lists them: for
        #: tokens that advertise what they cannot do, and to test the fallback
        self.disabled_mechanisms = frozenset(disabled_mechanisms)
        self._lock = threading.RLock()
        self._lib: Any = None
        self._choice: _Choice | None = None
        self._session: Any = None  # the logged-in session, when held
        self._batch_lock: asyncio.Lock | None = None
        #: bumped by card_removed(); a login made before a removal is void
        self._removals = 0
        self._login_removals = 0

    def __repr__(self) -> str:
        return f"CardToken({self.module!r}, token_label={self.token_label!r})"

    @property
    def batch_lock(self) -> asyncio.Lock:
        """Held by a request from its login to its last signature, so no other
        request signs with a login it did not make."""
        if self._batch_lock is None:
            import asyncio

            self._batch_lock = asyncio.Lock()
        return self._batch_lock

    # ------------------------------------------------------------------ public

    def status(self) -> TokenStatus:
        """The token that would be used and its passcode flags."""
        with self._lock:
            choice = self._current()
            info = self._fresh_info(choice)
            return _status_of(info, logged_in=self._session is not None)

    def token_label_in_use(self) -> str | None:
        """For getStatus: the label of the token that would be used, or None."""
        try:
            return self.status().label
        except CisError:
            return None

    @property
    def chosen_label(self) -> str | None:
        """The label of the token chosen by the last card call, without
        touching the card (None before the first call or after a removal)."""
        choice = self._choice
        return None if choice is None else choice.token.label

    def certificate(self) -> bytes:
        """The chosen certificate, DER."""
        with self._lock:
            return self._current().cert_der

    def begin_batch(self) -> TokenStatus:
        """Check the held login (if any) still works; report the token.

        ``status.logged_in`` is true only when a reused login is ready to sign.
        """
        with self._lock:
            self._check_removals()
            choice = self._current()
            if self._session is not None:
                try:
                    self._session.get_key(object_class=ObjectClass.PRIVATE_KEY, id=choice.key_id)
                except (p11.PKCS11Error, RuntimeError):
                    self._drop_session()
            return _status_of(self._fresh_info(choice), logged_in=self._session is not None)

    def login(self, pin: bytearray | None) -> None:
        """Log the user in; ``pin`` is wiped whatever happens.

        ``None`` means the reader's PIN pad collects the passcode.  Raises
        CisError PIN_LOCKED (without trying, when the token says it is
        locked), PIN_INCORRECT (``detail.attemptsLeft`` when known),
        CARD_REMOVED, NO_CARD, NO_CERTIFICATE.
        """
        try:
            with self._lock:
                choice = self._current(same_card=True)
                if self._session is not None:
                    return
                token = self._fresh_info(choice)  # flags as of now, for open() too
                status = _status_of(token)
                if status.pin_locked:
                    raise pin_locked_error()
                if pin is None and not status.protected_path:
                    raise CisError(ErrorCode.PIN_INCORRECT, "Enter your passcode.",
                                   _attempts(status))
                try:
                    if pin is None:
                        session = token.open(user_pin=pkcs11.PROTECTED_AUTH)
                    else:
                        session = token.open(user_pin=_Passcode(pin))
                except (p11.PinIncorrect, p11.PinInvalid, p11.PinLenRange):
                    # python-pkcs11 leaves the session it opened for the failed
                    # C_Login open; it holds no login and ends with the module.
                    after = _status_of(self._fresh_info(choice))
                    if after.pin_locked:
                        raise pin_locked_error() from None
                    message = "The passcode is not correct."
                    if after.pin_final_try:
                        message += " One more wrong passcode will lock the card."
                    raise CisError(ErrorCode.PIN_INCORRECT, message, _attempts(after)) from None
                except p11.PinLocked:
                    raise pin_locked_error() from None
                except p11.UserAlreadyLoggedIn:
                    # Login state is per application: another CardToken of this
                    # process holds a login.  Sharing it would sign without this
                    # passcode ever being checked, so refuse.
                    raise CisError(ErrorCode.AUTHENTICATION_FAILED,
                                   "The card is already logged in by another part of cisbridge; "
                                   "try again in a moment.") from None
                except p11.PinExpired:
                    raise CisError(ErrorCode.AUTHENTICATION_FAILED,
                                   "The card's passcode has expired: have it reset by your "
                                   "registration authority.") from None
                except p11.UserPinNotInitialized:
                    raise CisError(ErrorCode.AUTHENTICATION_FAILED,
                                   "The card has no passcode set: have it set up by your "
                                   "registration authority.") from None
                except p11.FunctionCancelled:
                    raise CisError(ErrorCode.USER_CANCELLED,
                                   "Passcode entry was cancelled on the reader.") from None
                except _CARD_GONE:
                    self._forget()
                    raise _removed() from None
                except p11.PKCS11Error as exc:
                    raise CisError(ErrorCode.AUTHENTICATION_FAILED,
                                   f"The card refused the login ({type(exc).__name__}).") from None
                self._session = session
                self._login_removals = self._removals
        finally:
            wipe(pin)

    def sign_many(self, algorithm: str, items: list[bytes]) -> list[bytes | CisError]:
        """Sign each item (RSA PKCS#1 v1.5) with the logged-in key.

        A failed item yields a CisError(SIGNING_FAILED) in its place; a card
        that went away fails the whole call with CARD_REMOVED.
        """
        if algorithm not in ALGORITHMS:
            raise CisError(ErrorCode.INVALID_REQUEST, f"unknown algorithm {algorithm!r}")
        with self._lock:
            self._check_removals()
            choice = self._current(same_card=True)
            if self._session is None:
                # Callers log in first; only a removal (card_removed, or a
                # failure that showed the card gone) ends the login between.
                raise _removed()
            try:
                key = self._session.get_key(object_class=ObjectClass.PRIVATE_KEY, id=choice.key_id)
            except _CARD_GONE:
                self._forget()
                raise _removed() from None
            except p11.NoSuchKey:
                raise CisError(ErrorCode.NO_CERTIFICATE,
                               "The card has no private key for its certificate.") from None
            except p11.MultipleObjectsReturned:
                raise CisError(ErrorCode.NO_CERTIFICATE,
                               "The card has several keys for its certificate; "
                               "it cannot be used for signing.") from None
            results: list[bytes | CisError] = []
            for data in items:
                if self._removals != self._login_removals:
                    self._forget()
                    raise _removed()
                try:
                    results.append(self._sign_one(choice, key, algorithm, data))
                except _CARD_GONE:
                    self._forget()
                    raise _removed() from None
                except p11.UserNotLoggedIn:
                    self._drop_session()
                    raise CisError(ErrorCode.AUTHENTICATION_FAILED,
                                   "The card logged out while signing: try again.") from None
                except p11.PKCS11Error as exc:
                    results.append(CisError(
                        ErrorCode.SIGNING_FAILED,
                        f"The card could not sign this item ({type(exc).__name__}).",
                    ))
            return results

    def sign(self, algorithm: str, data: bytes) -> bytes:
        """Sign one item with the logged-in key; a failure raises its CisError."""
        (outcome,) = self.sign_many(algorithm, [data])
        if isinstance(outcome, CisError):
            raise outcome
        return outcome

    def end_batch(self) -> None:
        """A request is done signing: log out unless logins may be reused."""
        with self._lock:
            if not self.reuse_login:
                self._drop_session()

    def card_removed(self) -> None:
        """The card left its reader: its login and the choice are void.

        Safe from any thread, including the event loop: it never waits for a
        card call in progress.  A batch being signed stops before its next
        item with CARD_REMOVED.
        """
        self._removals += 1
        if self._lock.acquire(blocking=False):
            try:
                self._forget()
            finally:
                self._lock.release()

    def close(self) -> None:
        """Log out and close the session (the host is exiting)."""
        with self._lock:
            self._forget()

    async def aclose(self) -> None:
        """:meth:`close` off the event loop (the service calls this at exit)."""
        import asyncio

        await asyncio.to_thread(self.close)

    # ---------------------------------------------------------------- internal

    def _sign_one(self, choice: _Choice, key: Any, algorithm: str, data: bytes) -> bytes:
        mechanism, hash_name, prefix = ALGORITHMS[algorithm]
        if mechanism in choice.mechanisms:
            try:
                return bytes(key.sign(data, mechanism=mechanism))
            except (p11.MechanismInvalid, p11.FunctionNotSupported):
                # Listed but not done: remember, and build the DigestInfo here.
                choice.mechanisms = choice.mechanisms - {mechanism}
        digest_info = prefix + hashlib.new(hash_name, data).digest()
        return bytes(key.sign(digest_info, mechanism=Mechanism.RSA_PKCS))

    def _load(self) -> Any:
        if self._lib is None:
            _default_softhsm_store(self.module)
            try:
                self._lib = pkcs11.lib(self.module)
            except (p11.PKCS11Error, OSError, RuntimeError) as exc:
                raise CisError(
                    ErrorCode.AGENT_UNAVAILABLE,
                    f"The smartcard library (PKCS#11 module) {self.module} could not be loaded "
                    f"({exc}). Install the card's middleware (OpenSC for NHS smartcards) or set "
                    f"{MODULE_KEY} in the cisbridge config to its PKCS#11 module.",
                    {"module": self.module, "configKey": "pkcs11.module"},
                ) from None
        return self._lib

    def _current(self, same_card: bool = False) -> _Choice:
        """The chosen token, re-checked (cheaply) to still be the same card.

        ``same_card``: the caller is in the middle of something with the card
        chosen before (a login prompted for it, a batch signed by it), so a
        different or missing card is CARD_REMOVED rather than a new choice.
        """
        choice = self._choice
        if choice is not None:
            try:
                info = choice.token.slot.get_token()
            except (p11.PKCS11Error, RuntimeError):
                info = None
            if info is not None and info.serial == choice.token.serial and info.label == choice.token.label:
                return choice
            self._forget()
            if same_card:
                raise _removed()
        self._choice = self._choose()
        return self._choice

    def _fresh_info(self, choice: _Choice) -> Any:
        try:
            return choice.token.slot.get_token()
        except (p11.PKCS11Error, RuntimeError):
            self._forget()
            raise _removed() from None

    def _tokens(self) -> list[Any]:
        lib = self._load()
        try:
            slots = lib.get_slots(token_present=True)
        except p11.PKCS11Error as exc:
            raise CisError(ErrorCode.NO_READER,
                           f"The smartcard library could not list readers ({type(exc).__name__}).") from None
        tokens = []
        for slot in slots:
            try:
                token = slot.get_token()
            except (p11.PKCS11Error, RuntimeError):
                continue
            if token.flags & TokenFlag.TOKEN_INITIALIZED:
                tokens.append(token)
        return tokens

    def _choose(self) -> _Choice:
        tokens = self._tokens()
        if not tokens:
            raise CisError(ErrorCode.NO_CARD, "No smartcard found: insert your card into the reader.")
        if self.token_label is not None:
            named = [t for t in tokens if t.label == self.token_label]
            if not named:
                raise CisError(
                    ErrorCode.NO_CARD,
                    f"No card labelled {self.token_label!r} ({LABEL_KEY}) is present; cards seen: "
                    f"{_names(tokens)}. Insert that card, or change {LABEL_KEY} in the cisbridge config.",
                    {"tokens": [t.label for t in tokens]},
                )
            tokens = named
        paired = []
        for token in tokens:
            found = _find_pair(token)
            if found is not None:
                paired.append((token, found))
        if not paired:
            raise CisError(
                ErrorCode.NO_CERTIFICATE,
                f"The card {_names(tokens)} holds no certificate with its key: "
                "it cannot be used to sign. Check it is your smartcard.",
                {"tokens": [t.label for t in tokens]},
            )
        if len(paired) > 1:
            names = [t.label for t, _ in paired]
            raise CisError(
                ErrorCode.NO_CARD,
                f"Several cards could be used: {_names([t for t, _ in paired])}. Remove the ones you "
                f"do not want to use, or set {LABEL_KEY} in the cisbridge config to choose one.",
                {"tokens": names},
            )
        token, (cert_der, key_id) = paired[0]
        try:
            mechanisms = frozenset(token.slot.get_mechanisms()) - self.disabled_mechanisms
        except p11.PKCS11Error:
            mechanisms = frozenset()
        return _Choice(token=token, cert_der=cert_der, key_id=key_id, mechanisms=mechanisms)

    def _drop_session(self) -> None:
        session, self._session = self._session, None
        if session is not None:
            try:
                session.close()  # C_Logout + C_CloseSession
            except (p11.PKCS11Error, RuntimeError):
                pass  # the card is gone: so is its login

    def _check_removals(self) -> None:
        """Drop a login that a removal (reported while busy) made void."""
        if self._session is not None and self._removals != self._login_removals:
            self._forget()

    def _forget(self) -> None:
        self._drop_session()
        self._choice = None


def _default_softhsm_store(module: str) -> None:
    """With SoftHSM as the module and no SOFTHSM2_CONF, use the store that
    ``cisbridge card create`` makes by default, when there is one: the browser
    starts the host with its own environment, not the shell's."""
    import os

    if "softhsm" not in os.path.basename(module).lower() or os.environ.get("SOFTHSM2_CONF"):
        return
    import platformdirs

    conf = os.path.join(platformdirs.user_data_dir("cisbridge"), "softhsm", "softhsm2.conf")
    if os.path.exists(conf):
        os.environ["SOFTHSM2_CONF"] = conf


def _find_pair(token: Any) -> tuple[bytes, bytes] | None:
    """(certificate DER, CKA_ID) of the token's signing certificate, if any."""
    try:
        with token.open() as session:
            certs = []
            for obj in session.get_objects({Attribute.CLASS: ObjectClass.CERTIFICATE}):
                try:
                    certs.append((bytes(obj[Attribute.ID]), bytes(obj[Attribute.VALUE])))
                except (p11.PKCS11Error, KeyError):
                    continue
            paired = []
            for key_id, der in certs:
                if not key_id:
                    continue
                for cls in (ObjectClass.PRIVATE_KEY, ObjectClass.PUBLIC_KEY):
                    if next(iter(session.get_objects({Attribute.CLASS: cls, Attribute.ID: key_id})), None):
                        paired.append((der, key_id))
                        break
    except (p11.PKCS11Error, RuntimeError):
        return None
    if not paired:
        return None
    if len(paired) > 1:
        # Several: prefer one whose key usage allows signing.
        signing = [p for p in paired if _can_sign(p[0])]
        paired = signing or paired
    return paired[0]


def _can_sign(der: bytes) -> bool:
    from cryptography import x509

    try:
        usage = x509.load_der_x509_certificate(der).extensions.get_extension_for_class(x509.KeyUsage)
    except x509.ExtensionNotFound:
        return True
    except ValueError:
        return False
    return bool(usage.value.digital_signature or usage.value.content_commitment)


def _status_of(info: Any, logged_in: bool = False) -> TokenStatus:
    flags = info.flags
    return TokenStatus(
        label=info.label,
        serial=info.serial.decode("ascii", "replace") if isinstance(info.serial, bytes) else str(info.serial),
        manufacturer=info.manufacturer_id,
        model=info.model,
        protected_path=bool(flags & TokenFlag.PROTECTED_AUTHENTICATION_PATH),
        pin_count_low=bool(flags & TokenFlag.USER_PIN_COUNT_LOW),
        pin_final_try=bool(flags & TokenFlag.USER_PIN_FINAL_TRY),
        pin_locked=bool(flags & TokenFlag.USER_PIN_LOCKED),
        logged_in=logged_in,
    )


def _attempts(status: TokenStatus) -> dict[str, Any] | None:
    left = status.attempts_left
    return None if left is None else {"attemptsLeft": left}


def _names(tokens: list[Any]) -> str:
    return ", ".join(repr(t.label) for t in tokens) or "none"


def pin_locked_error() -> CisError:
    return CisError(
        ErrorCode.PIN_LOCKED,
        "The card is locked after too many wrong passcodes: have it unlocked by your "
        "registration authority (or a local smartcard administrator).",
        {"attemptsLeft": 0},
    )


def _removed() -> CisError:
    return CisError(ErrorCode.CARD_REMOVED, "The card was removed: insert it and try again.")
