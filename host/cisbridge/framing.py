"""Native messaging frames: a 4-byte length in native byte order, then the bytes.

``FrameDecoder`` is pure and incremental: feed it whatever ``read()`` returned
(a byte at a time or many frames at once) and it hands back whole frames.  A
frame over the size limit is never buffered: its bytes are counted off as they
arrive and only a short prefix is kept, so the id can still be recovered.
"""

from __future__ import annotations

import struct

HEADER = struct.Struct("=I")  # native byte order, 4 bytes: what the browsers send
_PREFIX_KEPT = 512


class Oversize:
    """A frame that was too large; its bytes were discarded.

    (A plain class: this module is imported before ``ready``, typing is not.)
    """

    __slots__ = ("size", "prefix")

    def __init__(self, size: int, prefix: bytes):
        self.size, self.prefix = size, prefix

    def __eq__(self, other: object) -> bool:
        return isinstance(other, Oversize) and (self.size, self.prefix) == (other.size, other.prefix)

    def __repr__(self) -> str:
        return f"Oversize({self.size}, {len(self.prefix)} bytes kept)"


class FrameDecoder:
    def __init__(self, max_size: int):
        self.max_size = max_size
        self._buf = bytearray()
        self._skip = 0  # bytes of an oversize frame still to discard
        self._oversize: Oversize | None = None

    @property
    def partial(self) -> bool:
        """True when a frame has started but not finished (EOF now = truncated)."""
        return bool(self._buf) or self._skip > 0

    def feed(self, data: bytes) -> list[bytes | Oversize]:
        out: list[bytes | Oversize] = []
        view = memoryview(data)
        if self._skip:
            view = self._discard(view, out)
        if not view:
            return out
        if not self._buf and len(view) >= 4:
            # Fast path: the read holds exactly one whole frame (the usual case).
            (size,) = HEADER.unpack_from(view)
            if size <= self.max_size and len(view) == 4 + size:
                out.append(data[4:] if isinstance(data, bytes) else bytes(view[4:]))
                return out
        buf = self._buf
        buf += view
        pos = 0
        n = len(buf)
        while n - pos >= 4:
            (size,) = HEADER.unpack_from(buf, pos)
            if size > self.max_size:
                start = pos + 4
                have = min(n - start, size)
                prefix = bytes(buf[start : start + min(have, _PREFIX_KEPT)])
                self._oversize = Oversize(size, prefix)
                self._skip = size - have
                pos = start + have
                if self._skip:
                    break
                out.append(self._oversize)
                self._oversize = None
                continue
            end = pos + 4 + size
            if end > n:
                break
            out.append(bytes(buf[pos + 4 : end]))
            pos = end
        del buf[:pos]
        return out

    def _discard(self, view: memoryview, out: list[bytes | Oversize]) -> memoryview:
        take = min(self._skip, len(view))
        if self._oversize and len(self._oversize.prefix) < _PREFIX_KEPT:
            room = _PREFIX_KEPT - len(self._oversize.prefix)
            self._oversize = Oversize(self._oversize.size, self._oversize.prefix + bytes(view[: min(take, room)]))
        self._skip -= take
        if not self._skip and self._oversize is not None:
            out.append(self._oversize)
            self._oversize = None
        rest = view[take:]
        if rest:
            out.extend(self.feed(bytes(rest)))
            return memoryview(b"")
        return rest


def frame(payload: bytes) -> bytes:
    return HEADER.pack(len(payload)) + payload


# The extension writes "id" as the first key, so an oversize frame's id can be
# read from its first bytes without parsing the rest; anchored at the start so
# a nested "id" (a sign payload's) is never mistaken for the request's.
_LEADING_ID = rb'^\s*\{\s*"id"\s*:\s*(-?\d{1,16}|"(?:[^"\\\x00-\x1f]|\\.){1,128}")\s*[,}]'


def leading_id(prefix: bytes) -> int | str | None:
    import re

    m = re.match(_LEADING_ID, prefix)
    if not m:
        return None
    import msgspec

    try:
        value = msgspec.json.decode(m.group(1))
    except msgspec.DecodeError:
        return None
    if isinstance(value, int) and abs(value) >= 2**53:
        return None
    return value
