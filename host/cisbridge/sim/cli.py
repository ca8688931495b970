"""``cisbridge sim``: run the GAS/SSB simulator until interrupted."""

from __future__ import annotations

import argparse
import json
import logging
import signal
import sys
import threading
from pathlib import Path

from cisbridge.sim.server import FAULTS


def configure(parser: argparse.ArgumentParser) -> None:
    parser.add_argument("--host", default="127.0.0.1",
                        help="address to listen on (default 127.0.0.1; plain HTTP only on loopback)")
    parser.add_argument("--port", type=int, default=8443,
                        help="port to listen on (default 8443; 0 picks a free one)")
    parser.add_argument("--tls", action="store_true",
                        help="serve HTTPS with a certificate from the cisbridge test CA")
    parser.add_argument("--users", type=Path, metavar="FILE",
                        help="users and roles (TOML; default: the built-in test users)")
    parser.add_argument("--ca-dir", type=Path, metavar="DIR",
                        help="test CA directory (default $CISBRIDGE_TESTCA_DIR or the user data dir)")
    parser.add_argument("--idle-time", type=float, default=7200.0, metavar="S",
                        help="idle session time in seconds (default 7200)")
    parser.add_argument("--max-time", type=float, default=43200.0, metavar="S",
                        help="maximum session time in seconds (default 43200)")
    parser.add_argument("--fault", choices=FAULTS, default="none",
                        help="start with this fault injected (change it with POST /_sim/fault)")
    parser.add_argument("--fault-delay", type=float, metavar="S",
                        help="seconds the 'slow' fault waits before answering (default 30)")
    parser.add_argument("-v", "--verbose", action="store_true", help="log every request")


def run(args: argparse.Namespace) -> int:
    from cisbridge.sim.server import Fault, Simulator, SimulatorError
    from cisbridge.sim.users import UsersFileError
    from cisbridge.testca import TestCAError

    logging.basicConfig(level=logging.DEBUG if args.verbose else logging.INFO,
                        format="%(asctime)s %(name)s %(levelname)s %(message)s", stream=sys.stderr)
    try:
        fault = Fault.from_json({"fault": args.fault,
                                 **({"delay": args.fault_delay} if args.fault_delay is not None else {})})
        sim = Simulator(host=args.host, port=args.port, tls=args.tls, ca_dir=args.ca_dir,
                        users=args.users, idle_time=args.idle_time, max_time=args.max_time,
                        fault=fault)
        sim.start()
    except (SimulatorError, UsersFileError, TestCAError, ValueError) as exc:
        print(f"cisbridge sim: {exc}", file=sys.stderr)
        return 2
    stop = threading.Event()
    for sig in (signal.SIGINT, signal.SIGTERM):
        signal.signal(sig, lambda *_: stop.set())
    # One JSON line on stdout so scripts and tests can find the server.
    print(json.dumps({"url": sim.url, "caFile": str(sim.ca_file) if sim.ca_file else None,
                      "users": sorted(sim.state.users)}), flush=True)
    print(f"cisbridge sim: GAS/SSB simulator (test only, not NHS) at {sim.url}"
          + (f", trust {sim.ca_file}" if sim.ca_file else "") + "; Ctrl-C stops it",
          file=sys.stderr, flush=True)
    try:
        while not stop.wait(0.5):
            pass
    finally:
        sim.stop()
    return 0
