#!/usr/bin/env python3
"""The card login against the local simulator, time per phase.

Phases as the GAS agent runs them (SPINE.md §3): activate, card signature (here
a software RSA key wrapped as CMS; the agent's real card signature is on
SoftHSM2 or a card), validate, role selection, then the server-side checks an
EHR back end makes (GetSession, RoleAssertion).  Over plain HTTP and HTTPS,
one connection per request as the simple clients do.  Medians in milliseconds.

This is the baseline the GAS agent's own per-phase benchmark compares with.
Usage: scripts/bench_sim.py [--rounds N]
"""

from __future__ import annotations

import argparse
import base64
import statistics
import sys
import tempfile
import time
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parents[1] / "tests" / "sim"))

from cryptography.hazmat.primitives.asymmetric import rsa  # noqa: E402
from simclient import MANY_ROLES, Card, GasClient  # noqa: E402

from cisbridge import testca  # noqa: E402
from cisbridge.sim import Simulator  # noqa: E402
from cisbridge.spine.server import role_assertion, validate_ticket  # noqa: E402


def run(tls: bool, rounds: int, ca: testca.TestCA, card: Card) -> dict[str, float]:
    times: dict[str, list[float]] = {}

    def timed(name, fn, *args, **kwargs):
        start = time.perf_counter()
        result = fn(*args, **kwargs)
        times.setdefault(name, []).append((time.perf_counter() - start) * 1000)
        return result

    with Simulator(ca=ca, tls=tls) as sim:
        gas = GasClient(sim.url, sim.ca_file)
        for _ in range(rounds):
            act = timed("activate", gas.activate)
            response = timed("card signature", card.sign_challenge, base64.b64decode(act["challenge"]))
            status, obj = timed("validate", gas.validate, card, act, response=response)
            assert status == 200
            ticket = obj["sso_ticket"]
            assert timed("role selection", gas.select_role, ticket, "555000000201")[0] == 200
            timed("GetSession", validate_ticket, ticket, sim.url, sim.ca_file)
            timed("RoleAssertion", role_assertion, ticket, sim.url, sim.ca_file)
            gas.logout(ticket, MANY_ROLES)
    return {k: statistics.median(v) for k, v in times.items()}


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--rounds", type=int, default=50)
    args = parser.parse_args()
    with tempfile.TemporaryDirectory() as tmp:
        ca = testca.load_or_create(Path(tmp))
        key = rsa.generate_private_key(public_exponent=65537, key_size=2048)
        card = Card(MANY_ROLES, key, ca.issue_card_certificate(key.public_key(), MANY_ROLES))
        results = {scheme: run(scheme == "https", args.rounds, ca, card) for scheme in ("http", "https")}
    phases = list(results["http"])
    print(f"{'phase (median ms, ' + str(args.rounds) + ' rounds)':<34}{'http':>10}{'https':>10}")
    for phase in phases:
        print(f"{phase:<34}{results['http'][phase]:>10.2f}{results['https'][phase]:>10.2f}")
    login = ("activate", "card signature", "validate", "role selection")
    print(f"{'login total':<34}{sum(results['http'][p] for p in login):>10.2f}"
          f"{sum(results['https'][p] for p in login):>10.2f}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
