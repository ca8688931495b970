"""Logging to a rotating file in the user log dir, with secrets kept out.

The first rule is never to log a secret: request params, prompt values and
results are not logged at any level.  The formatter is the second line: any
OpenSSO-shaped ticket that reaches a log line anyway is redacted.
"""

from __future__ import annotations

import logging
import os
import re
from pathlib import Path

LOGGER = "cisbridge"

# OpenSSO/OpenAM session ids: AQIC + base64ish, optional @site part, optional '#'.
_TICKET = re.compile(r"AQIC[0-9A-Za-z*+/=._-]{8,}(?:@[0-9A-Za-z*+/=._-]*)?#?")


def redact(text: str) -> str:
    return _TICKET.sub("AQIC…[ticket redacted]", text)


class RedactingFormatter(logging.Formatter):
    def format(self, record: logging.LogRecord) -> str:
        return redact(super().format(record))


def log_dir() -> Path:
    named = os.environ.get("CISBRIDGE_LOG_DIR")
    if named:
        return Path(named)
    import platformdirs

    return Path(platformdirs.user_log_dir("cisbridge", appauthor=False))


def setup(level: str = "info", name: str = "host.log") -> Path | None:
    """Send the package's log records to ``<log dir>/<name>``; stderr if unwritable."""
    from logging.handlers import RotatingFileHandler

    logger = logging.getLogger(LOGGER)
    logger.setLevel(level.upper())
    logger.propagate = False
    for handler in list(logger.handlers):
        logger.removeHandler(handler)
    path: Path | None = None
    try:
        path = log_dir() / name
        path.parent.mkdir(parents=True, exist_ok=True)
        handler: logging.Handler = RotatingFileHandler(path, maxBytes=1_000_000, backupCount=3, encoding="utf-8")
    except (OSError, RuntimeError):  # RuntimeError: no home directory to put the log in
        path = None
        handler = logging.StreamHandler()  # stderr: browsers keep it in their own log
    handler.setFormatter(RedactingFormatter("%(asctime)s %(process)d %(levelname)s %(name)s: %(message)s"))
    logger.addHandler(handler)
    return path
