#!/usr/bin/env python3
"""GAS agent benchmarks, through the real host, against the local simulator.

- getTicketNoAuth with a live session vs a getStatus round trip (goal <= 1.2x):
  proves no network call per getTicketNoAuth; interleaved blocks, medians.
- full getTicket (passcode answered at once by this script), per phase:
  activate, passcode + card signature (SoftHSM2), CMS, validate, role selection;
  phases read from the host's own log line, medians over several logins.

Usage: scripts/bench_gas.py [--logins N] [--tls]
"""

from __future__ import annotations

import argparse
import json
import os
import re
import statistics
import sys
import tempfile
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT / "tests"))
sys.path.insert(0, str(Path(__file__).parent))

from bench_host import Peer, request  # noqa: E402
from hostclient import Host  # noqa: E402

from cisbridge import testca  # noqa: E402
from cisbridge.card import softhsm_module, testcard  # noqa: E402
from cisbridge.sim.server import Simulator  # noqa: E402

ORIGIN = "https://ehr.example.nhs.uk"
PIN = "2468"
PHASES = re.compile(r"login phases \(ms\): (.*)")


def main() -> int:
    ap = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    ap.add_argument("--logins", type=int, default=10)
    ap.add_argument("--tls", action="store_true", help="HTTPS to the simulator (default: http on loopback)")
    args = ap.parse_args()

    tmp = Path(tempfile.mkdtemp(prefix="cisbridge-bench-gas-"))
    ca = testca.load_or_create(tmp / "testca")
    conf = testcard.make_store(tmp / "store")
    testcard.create(label="one", pin=PIN, uuid="555000000001", softhsm_conf=conf, ca=ca)

    with Simulator(ca=ca, tls=args.tls) as sim:
        config = (
            f'allowed_origins = ["{ORIGIN}"]\n[agent]\nkind = "gas"\nurl = "{sim.url}"\n'
            + (f'ca_file = "{sim.ca_file}"\n' if sim.ca_file else "")
            + f'[pkcs11]\nmodule = "{softhsm_module()}"\ntoken_label = "one"\n'
        )
        totals: list[float] = []
        phases: dict[str, list[float]] = {}
        for i in range(args.logins):
            host = Host(tmp / f"host{i}", config, env={"SOFTHSM2_CONF": conf})
            start = time.perf_counter()
            rid = host.send("getTicket", {})
            host.reply(host.prompt("pin", timeout=30), PIN)
            assert "result" in host.response(rid, timeout=30)
            totals.append((time.perf_counter() - start) * 1000)
            host.stop()
            m = PHASES.search(host.log_text())
            for part in m.group(1).split(", "):
                name, ms = part.rsplit(" ", 1)
                phases.setdefault(name, []).append(float(ms))

        # Live session on a host whose pipes only the raw client reads.
        no_auth: list[float] = []
        status: list[float] = []
        cfg = tmp / "live.toml"
        cfg.write_text(config)
        env = dict(os.environ, CISBRIDGE_CONFIG=str(cfg), CISBRIDGE_LOG_DIR=str(tmp / "live-log"), SOFTHSM2_CONF=conf, XDG_CACHE_HOME=str(tmp / "cache"))
        peer = Peer([sys.executable, "-m", "cisbridge", "host", "chrome-extension://ekiaedepebiljeejbccahljdhmdiocpb/"], env)
        payload = json.dumps({"id": "login", "method": "getTicket", "origin": ORIGIN, "params": {}}).encode()
        peer.write(len(payload).to_bytes(4, sys.byteorder) + payload)
        prompt = json.loads(peer.read_frame())
        reply = json.dumps({"id": "pin", "method": "promptReply", "origin": ORIGIN, "params": {"prompt": prompt["prompt"], "value": PIN}}).encode()
        peer.write(len(reply).to_bytes(4, sys.byteorder) + reply)
        got = {json.loads(peer.read_frame()).get("id") for _ in range(2)}
        assert got == {"pin", "login"}, got
        for _ in range(10):
            for method, out in (("getTicketNoAuth", no_auth), ("getStatus", status)):
                frames = [request(k, method) for k in range(500)]
                for data in frames:
                    t = time.perf_counter_ns()
                    peer.write(data)
                    peer.read_frame()
                    out.append((time.perf_counter_ns() - t) / 1000)
        peer.close()

    print(f"simulator over {'https' if args.tls else 'http'}, SoftHSM2 card, {args.logins} logins")
    n, s = statistics.median(no_auth), statistics.median(status)
    print(f"getTicketNoAuth (live session) {n:.1f} us vs getStatus {s:.1f} us: {n / s:.2f}x (goal <= 1.2x)")
    print(f"full getTicket, median {statistics.median(totals):.1f} ms; phases (median ms):")
    for name, values in phases.items():
        print(f"  {name:<30} {statistics.median(values):7.1f}")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
