"""The card: PKCS#11 token (keys, certificate, signing) and PC/SC readers.

This package is imported by the host at start, so it stays light: python-pkcs11
and pyscard are imported only inside the modules that use them
(``card.token``, ``card.pcsc``), on first use.

The host keeps one :class:`~cisbridge.card.token.CardToken` for its lifetime,
made on first use from the ``[pkcs11]`` config section; :func:`get_card` is
how request handlers reach it.
"""

from __future__ import annotations

import os
import sys
import threading
from typing import TYPE_CHECKING, Any

if TYPE_CHECKING:
    from cisbridge.card.token import CardToken

#: Where OpenSC installs its PKCS#11 module, per OS, most likely first.  The
#: first that exists is the default for ``[pkcs11] module``; NHS smartcards
#: are read through OpenSC on Linux and macOS (the Windows default is OpenSC
#: too; sites using the NHS Identity Agent's own middleware set the module).
DEFAULT_MODULES: dict[str, tuple[str, ...]] = {
    "linux": (
        "/usr/lib/x86_64-linux-gnu/opensc-pkcs11.so",
        "/usr/lib/aarch64-linux-gnu/opensc-pkcs11.so",
        "/usr/lib64/opensc-pkcs11.so",
        "/usr/lib/opensc-pkcs11.so",
        "/usr/local/lib/opensc-pkcs11.so",
    ),
    "darwin": (
        "/Library/OpenSC/lib/opensc-pkcs11.so",
        "/opt/homebrew/lib/opensc-pkcs11.so",
        "/usr/local/lib/opensc-pkcs11.so",
    ),
    "win32": (
        r"C:\Program Files\OpenSC Project\OpenSC\pkcs11\opensc-pkcs11.dll",
        "opensc-pkcs11.dll",  # found on PATH by the loader
    ),
}

#: The software token the tests and ``cisbridge card`` use (TESTBED.md).
SOFTHSM_MODULES: tuple[str, ...] = (
    "/usr/lib/softhsm/libsofthsm2.so",
    "/usr/lib/x86_64-linux-gnu/softhsm/libsofthsm2.so",
    "/usr/local/lib/softhsm/libsofthsm2.so",
    "/opt/homebrew/lib/softhsm/libsofthsm2.so",
)


def _first_existing(paths: tuple[str, ...]) -> str:
    for path in paths:
        if os.path.isabs(path) and os.path.exists(path):
            return path
    return paths[0]


def default_module(platform: str | None = None) -> str:
    """The PKCS#11 module used when ``[pkcs11] module`` is not set."""
    platform = platform or sys.platform
    key = "win32" if platform.startswith("win") else "darwin" if platform == "darwin" else "linux"
    return _first_existing(DEFAULT_MODULES[key])


def softhsm_module() -> str:
    """SoftHSM2's module (``SOFTHSM2_MODULE`` overrides the search)."""
    return os.environ.get("SOFTHSM2_MODULE") or _first_existing(SOFTHSM_MODULES)


def make_card(config: Any) -> CardToken:
    """A :class:`CardToken` for the ``[pkcs11]`` section of ``config``."""
    from cisbridge.card.token import CardToken

    section = getattr(config, "pkcs11", None)
    module = getattr(section, "module", None) or default_module()
    label = getattr(section, "token_label", None) or None
    reuse = bool(getattr(section, "reuse_login", False))
    return CardToken(module, token_label=label, reuse_login=reuse)


_make_lock = threading.Lock()


def get_card(ctx: Any) -> CardToken:
    """The card a request's handler works with.

    ``ctx.card`` when the context carries one (tests, or a service that makes
    its own); else the service's single card, ``ctx.service.card``, made from
    the config on first use and closed by the service at exit (its
    ``aclose``).  Cheap: the module is loaded by the first card call, not here.
    """
    card = getattr(ctx, "card", None)
    if card is not None:
        return card
    service = ctx.service
    with _make_lock:
        card = getattr(service, "card", None)
        if card is None:
            card = make_card(ctx.config)
            service.card = card
        return card
