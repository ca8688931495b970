"""``cisbridge demo``: the whole flow on one machine (CONTRACT.md §4).

Starts the GAS/SSB simulator, a SoftHSM2 software card and, where pcscd and
vpcd are installed, a private pcscd with a virtual reader and card; serves a
demo EHR page with a small back end on loopback; installs the host into a
private Chromium profile and opens the page there with the extension.  With a
display a person clicks through it; without one (or with ``--headless``) the
demo drives the page and answers the extension's prompt windows itself,
printing each step with its timing and saving screenshots.  The end, Ctrl-C
or a kill stops everything it started and removes its temporary files.
"""

from __future__ import annotations

import argparse

USERS = {
    "555000000002": "MANYROLES Bob Mr — three roles, so the role window appears",
    "555000000001": "ONEROLE Alice Dr — one role, chosen without asking",
}


def configure(parser: argparse.ArgumentParser) -> None:
    parser.add_argument("--headless", action="store_true",
                        help="run the flow without a window even when a display is available "
                             "(the default when DISPLAY is not set)")
    parser.add_argument("--screenshots", metavar="DIR", default="demo-screenshots",
                        help="where the headless run saves its screenshots (default: ./demo-screenshots)")
    parser.add_argument("--user", choices=list(USERS), default="555000000002",
                        help="the simulated card holder: " + "; ".join(f"{k}: {v}" for k, v in USERS.items()))
    parser.add_argument("--no-reader", action="store_true",
                        help="do not start a private pcscd with a virtual reader (no card removal step)")
    parser.add_argument("--timeout", type=float, default=20.0, metavar="S",
                        help="how long each headless step may wait for the browser (default: 20)")
    parser.add_argument("--keep", action="store_true",
                        help="keep the temporary directory (logs, profile, config) for a look afterwards")


def run(args: argparse.Namespace) -> int:
    from cisbridge.demo.run import main

    return main(args)
