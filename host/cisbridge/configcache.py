"""Parsed configuration files, kept by their exact bytes, so that a normal
host start does not import tomllib (~13 ms of a cold start: it brings
typing, re, string and datetime).

One file in the user cache directory (``~/.cache/cisbridge/config-cache`` on
Linux), written with ``marshal`` (built in: nothing to import), holds for
each config file its bytes and what tomllib made of them.  A config file is
served from the cache only when its bytes, read at this start, are exactly
those stored: a changed file is parsed again, never served stale.

The cache is trusted only as far as the user is (docs/security.md): it must
be a regular file (not a symlink) owned by the user and writable by no one
else, and what it holds must be plain TOML values (str, int, float, bool,
lists, tables) — anything else, or any problem at all, and the files are
parsed as if there were no cache.  It is rewritten, after ``ready``, only
when a file was parsed; atomically (a temporary file, then a rename), 0600.
"""

from __future__ import annotations

import marshal
import os
import stat
import sys

NAME = "config-cache"
#: the file starts with this; another cisbridge cache format, Python or
#: marshal version is ignored (tomllib and marshal may differ between them)
MAGIC = f"cisbridge config cache 1, python {sys.hexversion:x}, marshal {marshal.version}\n".encode()
MAX_FILES = 8
MAX_BYTES = 1 << 20
_NOFOLLOW = getattr(os, "O_NOFOLLOW", 0) | getattr(os, "O_NONBLOCK", 0) | getattr(os, "O_BINARY", 0)


class ParseCache:
    def __init__(self, file: str | None):
        #: where the cache lives; None: no cache (no home directory to put it in)
        self.file = file
        #: config file path -> [its bytes, what tomllib made of them]
        self.entries: dict[str, list] = _load(file) if file else {}
        self.changed = False

    @classmethod
    def in_user_cache_dir(cls) -> ParseCache:
        from cisbridge import dirs

        try:
            return cls(os.path.join(dirs.user_cache_dir(), NAME))
        except RuntimeError:  # no home directory
            return cls(None)

    def get(self, path: str, data: bytes) -> dict | None:
        """What tomllib made of ``data`` when it was the file at path, if known."""
        entry = self.entries.get(path)
        if entry is not None and entry[0] == data:
            return entry[1]
        return None

    def put(self, path: str, data: bytes, parsed: dict) -> None:
        try:
            if not plain(parsed):  # e.g. a TOML date: not cached, parsed each time
                return
        except RecursionError:
            return
        self.entries.pop(path, None)
        self.entries[path] = [data, parsed]
        while len(self.entries) > MAX_FILES:
            del self.entries[next(iter(self.entries))]
        self.changed = True

    def save(self) -> None:
        """Write the cache if a file was parsed; never raises (a cache that
        cannot be written only makes the next start parse again)."""
        if not (self.changed and self.file):
            return
        self.changed = False
        tmp = f"{self.file}.{os.getpid()}.tmp"
        try:
            payload = _framed(marshal.dumps(self.entries))
            os.makedirs(os.path.dirname(self.file), mode=0o700, exist_ok=True)
            fd = os.open(tmp, os.O_WRONLY | os.O_CREAT | os.O_EXCL | _NOFOLLOW, 0o600)
            try:
                view = memoryview(payload)
                while view:
                    view = view[os.write(fd, view) :]
            finally:
                os.close(fd)
            os.replace(tmp, self.file)
        except (OSError, ValueError):
            try:
                os.unlink(tmp)
            except OSError:
                pass


def _load(file: str) -> dict[str, list]:
    try:
        fd = os.open(file, os.O_RDONLY | _NOFOLLOW)
    except OSError:
        return {}
    try:
        info = os.fstat(fd)
        if not trusted(info) or info.st_size > MAX_BYTES:
            return {}
        data = b""
        while chunk := os.read(fd, MAX_BYTES + 1 - len(data)):
            data += chunk
            if len(data) > MAX_BYTES:
                return {}
    except OSError:
        return {}
    finally:
        os.close(fd)
    payload = _unframed(data)
    if payload is None:
        return {}
    try:
        entries = marshal.loads(payload)
    except Exception:  # marshal's errors: EOFError, ValueError, TypeError, MemoryError
        return {}
    return entries if _valid(entries) else {}


def _framed(payload: bytes) -> bytes:
    return MAGIC + b"%d\n" % _checksum(payload) + payload


def _unframed(data: bytes) -> bytes | None:
    """The payload, if the file is whole.  A damaged marshal stream can be
    costly to reject (a list header claiming 2**31 items is allocated before
    the items are read), so damage is caught first, by a checksum."""
    if not data.startswith(MAGIC):
        return None
    checksum, newline, payload = data[len(MAGIC) :].partition(b"\n")
    if newline and checksum.isdigit() and int(checksum) == _checksum(payload):
        return payload
    return None


def _checksum(payload: bytes) -> int:
    """The payload and a final 1 (so a length change shows) as a number,
    modulo the largest 32-bit prime: catches truncation and flipped bits, and
    needs no import (zlib's crc32 does)."""
    return int.from_bytes(payload + b"\x01", "little") % 4294967291


def trusted(info: os.stat_result) -> bool:
    """A regular file that only its owner, this user, can have written."""
    if not stat.S_ISREG(info.st_mode):
        return False
    if sys.platform == "win32":  # the user's own profile directory; ACLs, not modes
        return True
    return info.st_uid == os.geteuid() and not info.st_mode & (stat.S_IWGRP | stat.S_IWOTH)


def _valid(entries: object) -> bool:
    if type(entries) is not dict or len(entries) > MAX_FILES:
        return False
    try:
        return all(
            type(path) is str and type(entry) is list and len(entry) == 2
            and type(entry[0]) is bytes and type(entry[1]) is dict and plain(entry[1])
            for path, entry in entries.items()
        )
    except RecursionError:
        return False


def plain(value: object) -> bool:
    """Whether value is made only of what TOML holds and marshal keeps:
    str (valid Unicode), int, float, bool, lists and str-keyed dicts."""
    kind = type(value)
    if kind is str:
        try:
            value.encode()
        except UnicodeEncodeError:  # a lone surrogate: TOML cannot hold one
            return False
        return True
    if kind is int or kind is float or kind is bool:
        return True
    if kind is list:
        return all(plain(v) for v in value)
    if kind is dict:
        return all(type(k) is str and plain(k) and plain(v) for k, v in value.items())
    return False
