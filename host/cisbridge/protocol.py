"""Every message of the native messaging wire, protocol 1, and every error code.

This module is the schema (CONTRACT.md §2–§3): requests are msgspec Structs in
a union tagged by ``method``, so decoding a frame *is* validating it — unknown
methods, unknown fields, missing fields and wrong types are all rejected by the
decoder with a message that names the offending path.  Nothing else in the
package defines a wire shape or an error code; the extension mirrors these
names in ``extension/src/protocol.ts``.

Field names are the wire's (camelCase where the contract says so), on purpose.
"""

from __future__ import annotations

import enum
from typing import Annotated, Any, Callable, Literal, Union

import msgspec
from msgspec import Meta, Struct, field

# --------------------------------------------------------------------------
# Error codes (CONTRACT.md §3): the same strings on every hop.


class ErrorCode(str, enum.Enum):
    EXTENSION_UNAVAILABLE = "EXTENSION_UNAVAILABLE"
    HOST_UNAVAILABLE = "HOST_UNAVAILABLE"
    VERSION_MISMATCH = "VERSION_MISMATCH"
    ORIGIN_NOT_ALLOWED = "ORIGIN_NOT_ALLOWED"
    INSECURE_CONTEXT = "INSECURE_CONTEXT"
    INVALID_REQUEST = "INVALID_REQUEST"
    USER_CANCELLED = "USER_CANCELLED"
    TIMEOUT = "TIMEOUT"
    BUSY = "BUSY"
    NO_READER = "NO_READER"
    NO_CARD = "NO_CARD"
    CARD_REMOVED = "CARD_REMOVED"
    PIN_INCORRECT = "PIN_INCORRECT"
    PIN_LOCKED = "PIN_LOCKED"
    NO_CERTIFICATE = "NO_CERTIFICATE"
    AGENT_UNAVAILABLE = "AGENT_UNAVAILABLE"
    AUTHENTICATION_FAILED = "AUTHENTICATION_FAILED"
    SIGNING_FAILED = "SIGNING_FAILED"
    INTERNAL = "INTERNAL"


class CisError(Exception):
    """A failure that crosses the wire as ``{"code", "message", "detail"}``.

    ``message`` is for people: say what happened and what to do about it.
    ``detail`` is for programs and support staff; never put a passcode, a
    ticket or a signature in either.
    """

    def __init__(self, code: ErrorCode, message: str, detail: dict[str, Any] | None = None):
        super().__init__(message)
        self.code = ErrorCode(code)
        self.message = message
        self.detail = detail

    def __repr__(self) -> str:
        return f"CisError({self.code.value}, {self.message!r})"


# --------------------------------------------------------------------------
# Requests (extension -> host)

#: Request ids: an integer a JavaScript number holds exactly, or a short string.
RequestId = Union[
    Annotated[int, Meta(ge=-(2**53) + 1, le=2**53 - 1)],
    Annotated[str, Meta(min_length=1, max_length=128)],
]
Origin = Annotated[str, Meta(min_length=1, max_length=2048)]
Algorithm = Literal["RS1", "RS256"]
PromptKind = Literal["pin", "role", "consent"]


class _Params(Struct, forbid_unknown_fields=True, frozen=True):
    pass


class NoParams(_Params):
    pass


class GetTicketParams(_Params):
    pass


class SignPayload(_Params):
    id: Annotated[str, Meta(min_length=1, max_length=128)]
    #: base64 of the bytes to sign (for EPS: the canonical SignedInfo).
    payload: str


class SignParams(_Params):
    algorithm: Algorithm
    payloads: list[SignPayload]
    description: Annotated[str, Meta(max_length=1000)] | None = None


class PromptReplyParams(_Params):
    prompt: Annotated[int, Meta(ge=0, le=2**53 - 1)]
    #: pin: the passcode ("" on a PIN-pad reader); role: the role id; consent: true.
    value: Annotated[str, Meta(max_length=256)] | bool | None = None
    cancel: bool = False

    def __repr__(self) -> str:  # never show a passcode in a traceback or log
        return f"PromptReplyParams(prompt={self.prompt}, cancel={self.cancel})"


class CancelParams(_Params):
    request: RequestId


class _Request(Struct, tag_field="method", forbid_unknown_fields=True, frozen=True):
    id: RequestId
    origin: Origin


class GetTicket(_Request, tag="getTicket"):
    params: GetTicketParams = field(default_factory=GetTicketParams)


class GetTicketNoAuth(_Request, tag="getTicketNoAuth"):
    params: NoParams = field(default_factory=NoParams)


class GetCertificate(_Request, tag="getCertificate"):
    params: NoParams = field(default_factory=NoParams)


class Sign(_Request, tag="sign"):
    params: SignParams


class GetStatus(_Request, tag="getStatus"):
    params: NoParams = field(default_factory=NoParams)


class PromptReply(_Request, tag="promptReply"):
    params: PromptReplyParams


class Cancel(_Request, tag="cancel"):
    params: CancelParams


Request = Union[GetTicket, GetTicketNoAuth, GetCertificate, Sign, GetStatus, PromptReply, Cancel]

#: Methods answered at once by the service itself: they never count towards
#: the outstanding-request limit, so a full host can still be cancelled.
CONTROL_METHODS = frozenset({"promptReply", "cancel"})


_METHODS: dict[type, str] = {t: t.__struct_config__.tag for t in Request.__args__}  # type: ignore[attr-defined]


def method_of(request: Request) -> str:
    return _METHODS[type(request)]


# --------------------------------------------------------------------------
# Results


class Empty(Struct):
    pass


class Ticket(Struct):
    ticket: str | None


class Reader(Struct):
    name: str
    cardPresent: bool


class Session(Struct, omit_defaults=True, frozen=True):
    active: bool
    #: what the agent may say of a live session (uid, role id, expiry); never the ticket.
    uid: str | None = None
    roleId: str | None = None
    idleExpiresAt: float | None = None
    maxExpiresAt: float | None = None


class Status(Struct, omit_defaults=True):
    host: str
    protocol: int
    agent: str
    readers: list[Reader]
    cardPresent: bool
    session: Session
    #: "ok" or why readers cannot be listed ("unavailable: pcscd is not running").
    pcsc: str
    #: label of the PKCS#11 token in use, once a card call has chosen one
    token: str | None = None


class Certificate(Struct):
    certificate: str
    subject: str
    issuer: str
    serialNumber: str
    notBefore: str
    notAfter: str


class Signature(Struct):
    id: str
    signature: str


class FailedSignature(Struct):
    id: str
    code: ErrorCode
    message: str


class SignResult(Struct):
    certificate: str
    signatures: list[Signature]
    failed_signatures: list[FailedSignature]
    algorithm: Algorithm


# --------------------------------------------------------------------------
# Frames host -> extension


class ErrorBody(Struct, omit_defaults=True):
    code: ErrorCode
    message: str
    detail: dict[str, Any] | None = None


class ResultFrame(Struct):
    id: RequestId
    result: Any


class ErrorFrame(Struct):
    #: null only when no id could be read from the request.
    id: RequestId | None
    error: ErrorBody


class EventFrame(Struct):
    event: Literal["ready", "cardInserted", "cardRemoved", "sessionEnded"]
    data: Any


class PromptFrame(Struct):
    prompt: int
    for_: RequestId = field(name="for")
    kind: PromptKind = "pin"
    data: Any = None


class ReadyData(Struct):
    version: str
    protocol: int
    agent: str
    allowedOrigins: list[str]


class PinPromptData(Struct, omit_defaults=True):
    origin: str
    #: always sent (CONTRACT §2: ``protectedPath: bool``), hence no default
    protectedPath: bool
    attemptsLeft: int | None = None
    #: true when asking again because the last passcode was not accepted
    retry: bool = False


class Role(Struct):
    id: str
    org: str
    orgCode: str
    name: str


class RolePromptData(Struct):
    roles: list[Role]


class ConsentPromptData(Struct):
    origin: str
    description: str
    count: int
    algorithm: Algorithm


class CardEventData(Struct):
    reader: str
    atr: str | None = None


class SessionEndedData(Struct, omit_defaults=True):
    #: "cardRemoved", "idleTimeout", "maxTimeout", "logout", "serverEnded"
    reason: str
    uid: str | None = None


# --------------------------------------------------------------------------
# Codec

_encoder = msgspec.json.Encoder()
_request_decoder: msgspec.json.Decoder | None = None  # built on first use, after ready

#: Host -> browser frames may not exceed this (the browsers' own limit).
MAX_OUTGOING = 1024 * 1024


def encode(frame: Any) -> bytes:
    return _encoder.encode(frame)


def decode_request(payload: bytes) -> Request:
    """Decode and validate one request, or raise CisError(INVALID_REQUEST)."""
    global _request_decoder
    if _request_decoder is None:
        _request_decoder = msgspec.json.Decoder(Request)
    return _decode_with(_request_decoder, payload)


def request_decoder() -> Callable[[bytes], Request]:
    """A decode_request of its own, for another thread (the host's reader thread
    decodes while the event loop thread may be decoding too)."""
    decoder = msgspec.json.Decoder(Request)
    return lambda payload: _decode_with(decoder, payload)


def _decode_with(decoder: msgspec.json.Decoder, payload: bytes) -> Request:
    try:
        return decoder.decode(payload)
    except msgspec.DecodeError as exc:
        raise CisError(ErrorCode.INVALID_REQUEST, _explain(exc, payload)[:500]) from None
    except UnicodeDecodeError:  # msgspec raises it for bad UTF-8 inside strings
        raise CisError(ErrorCode.INVALID_REQUEST, "the frame is not valid UTF-8") from None


def salvage_id(payload: bytes) -> RequestId | None:
    """The request id of a frame that failed validation, if one can be read."""
    try:
        obj = msgspec.json.decode(payload)
    except (msgspec.DecodeError, UnicodeDecodeError):
        # Bad UTF-8 inside a string (msgspec < 0.23 raises UnicodeDecodeError,
        # later versions DecodeError): read the id from a repaired copy.
        try:
            payload.decode("utf-8")
        except UnicodeDecodeError:
            return salvage_id(payload.decode("utf-8", "replace").encode())
        return None
    if isinstance(obj, dict):
        value = obj.get("id")
        try:
            return msgspec.convert(value, RequestId)  # type: ignore[arg-type]
        except msgspec.ValidationError:
            return None
    return None


def _explain(exc: msgspec.DecodeError, payload: bytes) -> str:
    text = str(exc)
    if not payload:
        return "empty frame: a request is a JSON object"
    if isinstance(exc, msgspec.ValidationError):
        if text.startswith("Expected `object`, got") and "at `$" not in text:
            return "a request must be a JSON object: " + text
        return "invalid request: " + text
    try:
        payload.decode("utf-8")
    except UnicodeDecodeError:
        return "the frame is not valid UTF-8"
    return "the frame is not valid JSON: " + text
