#!/usr/bin/env python3
"""In-page round trip of cisAuth.getTicketNoAuth() in headless Chromium.

Compares the real host with a minimal echo host behind the same extension
path (page -> content script -> background -> native port -> host and back),
so the ratio shows what the host adds over the floor the browser imposes.
Goal (issue #5): median(real) <= 1.2 x median(echo), medians of 500 in the
same run.  Writes bench-results/browser-roundtrip.json.

Timings come from performance.now() in a cross-origin isolated page (5 us
resolution); the two browsers run at once and take turns in blocks of 50.

Usage: .venv/bin/python scripts/bench_browser.py [--runs 500] [--warmup 50]
"""

from __future__ import annotations

import argparse
import json
import statistics
import sys
import tempfile
import threading
import time
from http.server import ThreadingHTTPServer
from pathlib import Path

REPO = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(REPO / "tests" / "browser"))

import conftest  # noqa: E402
from conftest import Browser  # noqa: E402

ECHO_HOST = r'''
import json, os, struct, sys
out = sys.stdout.buffer
def send(obj):
    data = json.dumps(obj).encode()
    out.write(struct.pack("=I", len(data)) + data)
    out.flush()
send({"event": "ready", "data": {"version": "echo", "protocol": 1, "agent": "none", "allowedOrigins": ORIGINS}})
inp = sys.stdin.buffer
while True:
    head = inp.read(4)
    if len(head) < 4:
        break
    frame = json.loads(inp.read(struct.unpack("=I", head)[0]))
    send({"id": frame["id"], "result": {"ticket": None}})
'''


class _IsolatedHandler(conftest._Handler):
    """Cross-origin isolated page: performance.now() then has 5 us resolution instead of 100 us."""

    def end_headers(self):
        self.send_header("Cross-Origin-Opener-Policy", "same-origin")
        self.send_header("Cross-Origin-Embedder-Policy", "require-corp")
        super().end_headers()


def measure(page, runs: int) -> list[float]:
    return page.evaluate(
        "(async () => {"
        "  const times = [];"
        f"  for (let i = 0; i < {runs}; i++) {{"
        "    const t = performance.now(); await cisAuth.getTicketNoAuth(); times.push(performance.now() - t);"
        "  }"
        "  return times;"
        "})()",
        timeout=300,
    )


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--runs", type=int, default=500)
    parser.add_argument("--warmup", type=int, default=50)
    args = parser.parse_args()

    server = ThreadingHTTPServer(("127.0.0.1", 0), _IsolatedHandler)
    threading.Thread(target=server.serve_forever, daemon=True).start()
    origin = f"http://127.0.0.1:{server.server_address[1]}"
    config = f'allowed_origins = ["{origin}"]\n\n[agent]\nkind = "none"\n'

    # Both browsers run at once and take turns in blocks, so both see the same machine.
    results: dict[str, list[float]] = {"echo": [], "host": []}
    with tempfile.TemporaryDirectory() as tmp:
        echo = Path(tmp) / "echo_host.py"
        echo.write_text(ECHO_HOST.replace("ORIGINS", json.dumps([origin])))
        browsers, pages = {}, {}
        try:
            for name, script in (("echo", echo), ("host", None)):
                workdir = Path(tmp) / name
                workdir.mkdir()
                browsers[name] = Browser(workdir, config, host_script=script)
                pages[name] = browsers[name].open(origin + "/")
                isolated = pages[name].evaluate("self.crossOriginIsolated")
                measure(pages[name], args.warmup)
            block = 50
            for _ in range(0, args.runs, block):
                for name in ("echo", "host"):
                    results[name] += measure(pages[name], min(block, args.runs - len(results[name])))
        finally:
            for browser in browsers.values():
                browser.close()
    server.shutdown()

    summary = {
        name: {
            "runs": len(times),
            "median_ms": round(statistics.median(times), 4),
            "mean_ms": round(statistics.fmean(times), 4),
            "p90_ms": round(statistics.quantiles(times, n=10)[-1], 4),
            "min_ms": round(min(times), 4),
        }
        for name, times in results.items()
    }
    ratio = summary["host"]["median_ms"] / summary["echo"]["median_ms"]
    report = {"benchmark": "in-page getTicketNoAuth round trip, headless Chromium", "when": time.strftime("%Y-%m-%dT%H:%M:%SZ", time.gmtime()),
              "crossOriginIsolated": isolated, "results": summary, "ratio_host_over_echo": round(ratio, 3), "goal": "<= 1.2"}
    out = REPO / "bench-results"
    out.mkdir(exist_ok=True)
    (out / "browser-roundtrip.json").write_text(json.dumps(report, indent=2) + "\n")
    print(json.dumps(report, indent=2))
    return 0


if __name__ == "__main__":
    sys.exit(main())
