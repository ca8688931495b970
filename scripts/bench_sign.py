#!/usr/bin/env python3
"""Benchmark: a batch of 100 RS256 signatures on SoftHSM2.

Compares, on the same key in the same run (median of --runs):
  direct   a python-pkcs11 loop over the key with an open, logged-in session
  handler  cisbridge's sign handler in this process (prompts answered at once)
  host     the real host process, through frames (prompts answered at once)
and prints each as a ratio to direct.  Goal (issue #3): host <= 1.3 x direct.

"reused" rows keep the card logged in between batches ([pkcs11] reuse_login),
which is what the direct loop does; "login" rows log in for every batch (the
default), so they include C_Login.  Variants take turns (round robin) so that
changes in machine load hit them alike.

Usage: .venv/bin/python scripts/bench_sign.py [--runs 7] [--batch 100]
"""

from __future__ import annotations

import argparse
import asyncio
import base64
import os
import statistics
import sys
import tempfile
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT / "tests"))

PIN = "1234"
ORIGIN = "https://ehr.example.nhs.uk"


class AutoContext:
    """Answers consent with True and the passcode prompt with PIN, at once."""

    def __init__(self, card):
        self.id, self.origin, self.card, self.config = 1, ORIGIN, card, None

    async def prompt(self, kind, data):
        return True if kind == "consent" else PIN

    async def run_blocking(self, fn, *args):
        return await asyncio.to_thread(fn, *args)

    def emit(self, event, data):
        pass


def _direct_in_own_session(module, key_id, payloads):
    """A direct loop that opens (and logs in) its session each time it runs,
    then closes it, so it can take turns with the handler in one process."""
    import pkcs11
    from pkcs11 import Mechanism, ObjectClass

    token = pkcs11.lib(module).get_token(token_label="bench")

    def run():
        with token.open(user_pin=PIN) as session:
            key = session.get_key(object_class=ObjectClass.PRIVATE_KEY, id=key_id)
            for data in payloads:
                key.sign(data, mechanism=Mechanism.SHA256_RSA_PKCS)

    return run


def main() -> int:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--runs", type=int, default=7)
    ap.add_argument("--batch", type=int, default=100)
    args = ap.parse_args()

    with tempfile.TemporaryDirectory(prefix="cisbridge-bench-") as tmp:
        return bench(Path(tmp), args)


def bench(tmp: Path, args: argparse.Namespace) -> int:
    os.environ["CISBRIDGE_TESTCA_DIR"] = str(tmp / "testca")
    from cisbridge import protocol as p
    from cisbridge.actions.sign import sign
    from cisbridge.card import softhsm_module, testcard
    from cisbridge.card.token import CardToken

    conf = testcard.make_store(tmp / "softhsm")
    card = testcard.create(label="bench", pin=PIN, softhsm_conf=conf)
    module = softhsm_module()
    payloads = [os.urandom(1200) for _ in range(args.batch)]  # about an EPS SignedInfo each
    params = p.SignParams(
        algorithm="RS256",
        payloads=[p.SignPayload(f"rx-{i}", base64.b64encode(d).decode()) for i, d in enumerate(payloads)],
    )

    import contextlib

    import pkcs11
    from hostclient import Host
    from pkcs11 import Mechanism, ObjectClass

    wire = {"algorithm": "RS256", "payloads": [{"id": x.id, "payload": x.payload} for x in params.payloads]}

    def host_runner(host):
        def via_host():
            rid = host.send("sign", wire)
            while True:
                frame = host.next_frame(timeout=30)
                if "prompt" in frame:
                    value = True if frame["kind"] == "consent" else PIN
                    host.send("promptReply", {"prompt": frame["prompt"], "value": value})
                elif frame.get("id") == rid:
                    assert len(frame["result"]["signatures"]) == args.batch, frame
                    return

        return via_host

    def handler_runner(token_obj):
        ctx = AutoContext(token_obj)

        def via_handler():
            result = asyncio.run(sign(ctx, params))
            assert len(result.signatures) == args.batch

        return via_handler

    samples: dict[str, list[float]] = {}

    def measure(runners: dict) -> None:
        # Round robin, so drift in machine load hits every variant alike.
        for fn in runners.values():
            fn()  # warm up
        for _ in range(args.runs):
            for label, fn in runners.items():
                start = time.perf_counter()
                fn()
                samples.setdefault(label, []).append(time.perf_counter() - start)

    # One host per round: a host that logs in and out rewrites SoftHSM's token
    # file, which makes every other process using the store reload it.
    for label, reuse in (("host, reused login", True), ("host, login per batch", False)):
        with contextlib.ExitStack() as stack:
            session = pkcs11.lib(module).get_token(token_label="bench").open(user_pin=PIN)
            stack.callback(session.close)
            key = session.get_key(object_class=ObjectClass.PRIVATE_KEY, id=card.key_id)

            def direct(key=key):
                for data in payloads:
                    key.sign(data, mechanism=Mechanism.SHA256_RSA_PKCS)

            config = (
                f'allowed_origins = ["{ORIGIN}"]\n[pkcs11]\nmodule = "{module}"\ntoken_label = "bench"\n'
                f"reuse_login = {'true' if reuse else 'false'}\n"
            )
            host = stack.enter_context(Host(tmp / f"host-{reuse}", config, env={"SOFTHSM2_CONF": conf}))
            measure({f"direct, open session ({label})": direct, label: host_runner(host)})

    # In this process, PKCS#11 login state is shared by all sessions, so the
    # handler takes turns with direct loops that fit its login pattern.
    per_batch = CardToken(module, token_label="bench", reuse_login=False)
    measure({
        "direct, login per run": _direct_in_own_session(module, card.key_id, payloads),
        "handler, login per batch": handler_runner(per_batch),
    })
    per_batch.close()
    reused = CardToken(module, token_label="bench", reuse_login=True)
    handler_runner(reused)()  # logs in and keeps it
    shared = pkcs11.lib(module).get_token(token_label="bench").open()  # shares that login
    shared_key = shared.get_key(object_class=ObjectClass.PRIVATE_KEY, id=card.key_id)
    measure({
        "direct, shared login": lambda: [shared_key.sign(d, mechanism=Mechanism.SHA256_RSA_PKCS) for d in payloads],
        "handler, reused login": handler_runner(reused),
    })
    shared.close()
    reused.close()
    results = {label: statistics.median(v) for label, v in samples.items()}

    base = results["direct, open session (host, reused login)"]
    print(f"batch of {args.batch} RS256 signatures on SoftHSM2, median of {args.runs} runs")
    for label, seconds in results.items():
        print(f"  {label:45s} {seconds * 1000:8.1f} ms   {seconds / base:5.2f} x direct")
    print("same-round ratios:")
    for a, b in (
        ("host, reused login", "direct, open session (host, reused login)"),
        ("host, login per batch", "direct, open session (host, login per batch)"),
        ("handler, login per batch", "direct, login per run"),
        ("handler, reused login", "direct, shared login"),
    ):
        print(f"  {a} / {b} = {results[a] / results[b]:.2f}")
    print("goal (issue #3): host <= 1.3 x direct")
    return 0


if __name__ == "__main__":
    sys.exit(main())
