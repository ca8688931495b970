"""cisbridge: NHS smartcards for web-based clinical systems.

The package is layered: ``protocol`` (wire messages and error codes) and
``framing`` are the core; ``service`` dispatches requests; ``agents`` and
``card`` are the adapters it relays to; the CLI, installer and simulator are
edges.  Imports point from the edges to the core, never back.
"""

__version__ = "0.1.0"

#: Native messaging protocol version (CONTRACT.md §2).
PROTOCOL = 1

#: Native messaging host name the browsers look up.
HOST_NAME = "org.cisbridge.host"

#: Firefox add-on id of the companion extension.
FIREFOX_EXTENSION_ID = "cisbridge@cisbridge.org"

#: Chromium-family id fixed by the development key in the extension manifest.
DEV_CHROME_EXTENSION_ID = "ekiaedepebiljeejbccahljdhmdiocpb"
