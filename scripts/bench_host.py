#!/usr/bin/env python3
"""Host core benchmarks: ratios against baselines run in the same process.

- cold start: spawn -> `ready` frame, against `python -c pass` on the same
  interpreter, for the command installed launchers run
  (`installer.launcher_argv`), with the config named by CISBRIDGE_CONFIG and
  found the real way (system file via XDG_CONFIG_DIRS, user file in the
  default ~/.config under a private HOME), with the config parse cache warm
  and cold; and for `python -m cisbridge host`
- sequential getStatus round trip over pipes, against a minimal C echo host
  (same framing, compiled here with cc)
- 64 requests in flight: throughput against the same C echo host
- memory: idle RSS, and growth after 100,000 requests

Machines here are noisy: each pair is interleaved and medians are compared.
Round trips are measured with client and host pinned to one core (their CPU
cost, not the machine's wake-up latency across cores) and again unpinned.
Usage: scripts/bench_host.py [--quick] [--cold-start]
"""

from __future__ import annotations

import argparse
import compileall
import json
import os
import platform
import shutil
import statistics
import struct
import subprocess
import sys
import tempfile
import time
from pathlib import Path

REPO = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(REPO / "tests"))
from support.interpreter import PACKAGE, checkout_python  # noqa: E402

HEADER = struct.Struct("=I")
CALLER = "chrome-extension://ekiaedepebiljeejbccahljdhmdiocpb/"
ORIGIN = "https://ehr.example.nhs.uk"

ECHO_C = r"""
#include <stdint.h>
#include <stdlib.h>
#include <unistd.h>
static int readall(int fd, void *buf, size_t n) {
    size_t got = 0;
    while (got < n) { ssize_t r = read(fd, (char *)buf + got, n - got); if (r <= 0) return -1; got += r; }
    return 0;
}
static int writeall(int fd, const void *buf, size_t n) {
    size_t put = 0;
    while (put < n) { ssize_t w = write(fd, (const char *)buf + put, n - put); if (w <= 0) return -1; put += w; }
    return 0;
}
int main(void) {
    static const char ready[] = "{\"event\":\"ready\",\"data\":{\"version\":\"echo\",\"protocol\":1}}";
    uint32_t n = sizeof ready - 1;
    writeall(1, &n, 4); writeall(1, ready, n);
    char *buf = malloc(1 << 20);
    for (;;) {
        if (readall(0, &n, 4) || n > (1 << 20) || readall(0, buf, n)) return 0;
        if (writeall(1, &n, 4) || writeall(1, buf, n)) return 0;
    }
}
"""


class Peer:
    """A host process and a raw-pipe client for it."""

    def __init__(self, argv: list[str], env: dict[str, str]):
        self.proc = subprocess.Popen(argv, stdin=subprocess.PIPE, stdout=subprocess.PIPE, env=env, bufsize=0)
        self.wfd = self.proc.stdin.fileno()
        self.rfd = self.proc.stdout.fileno()
        self.buf = b""
        self.read_frame()

    def read_frame(self) -> bytes:
        while len(self.buf) < 4:
            self.buf += os.read(self.rfd, 1 << 16)
        (n,) = HEADER.unpack_from(self.buf)
        while len(self.buf) < 4 + n:
            self.buf += os.read(self.rfd, 1 << 16)
        frame, self.buf = self.buf[4 : 4 + n], self.buf[4 + n :]
        return frame

    def write(self, data: bytes) -> None:
        view = memoryview(data)
        while view:
            view = view[os.write(self.wfd, view) :]

    def rss_kb(self) -> int:
        for line in Path(f"/proc/{self.proc.pid}/status").read_text().splitlines():
            if line.startswith("VmRSS:"):
                return int(line.split()[1])
        return -1

    def close(self) -> None:
        self.proc.stdin.close()
        self.proc.wait(5)
        self.proc.stdout.close()


def request(i: int, method: str = "getStatus") -> bytes:
    payload = json.dumps({"id": i, "method": method, "origin": ORIGIN}, separators=(",", ":")).encode()
    return HEADER.pack(len(payload)) + payload


def round_trips(peer: Peer, n: int, method: str = "getStatus") -> list[float]:
    times = []
    frames = [request(i, method) for i in range(n)]
    for data in frames:
        t = time.perf_counter_ns()
        peer.write(data)
        peer.read_frame()
        times.append((time.perf_counter_ns() - t) / 1000)
    return times


def in_flight(peer: Peer, n: int, depth: int = 64) -> float:
    """Requests per second with `depth` outstanding at all times."""
    frames = [request(i) for i in range(n)]
    start = time.perf_counter()
    sent = 0
    for sent in range(min(depth, n)):
        peer.write(frames[sent])
    sent = min(depth, n)
    for _ in range(n):
        peer.read_frame()
        if sent < n:
            peer.write(frames[sent])
            sent += 1
    return n / (time.perf_counter() - start)


def build_echo(tmp: Path) -> Path:
    src = tmp / "echo_host.c"
    src.write_text(ECHO_C)
    exe = tmp / "echo_host"
    subprocess.run(["cc", "-O2", "-o", str(exe), str(src)], check=True)
    return exe


def cold_start(argv: list[str], env: dict[str, str], wait_frame: bool) -> float:
    t = time.perf_counter()
    proc = subprocess.Popen(argv, stdin=subprocess.PIPE, stdout=subprocess.PIPE, env=env, bufsize=0)
    if wait_frame:
        head = proc.stdout.read(4)
        proc.stdout.read(HEADER.unpack(head)[0])
        elapsed = time.perf_counter() - t
        proc.stdin.close()
        proc.wait()
    else:
        proc.wait()
        elapsed = time.perf_counter() - t
        proc.stdin.close()
    proc.stdout.close()
    return elapsed * 1000


def cold_start_forms(tmp: Path) -> dict[str, tuple[list[str], dict[str, str], object]]:
    """name -> (argv, environment, what to do before each start) for the cold start part.

    Every form has a private HOME (the config parse cache lives in its
    ~/.cache); "cold cache" removes the cache before each start.  The
    launchers' interpreter runs this checkout even from a second worktree
    (tests/support/interpreter.py); its bytecode is compiled first, as an
    installed package's is (PYTHONDONTWRITEBYTECODE may be set here)."""
    from cisbridge.install.installer import launcher_argv

    compileall.compile_dir(str(PACKAGE), quiet=1)
    py = checkout_python()
    base = {k: v for k, v in os.environ.items() if not k.startswith(("XDG_", "CISBRIDGE_"))}

    def form(name: str, named: bool) -> dict[str, str]:
        home = tmp / f"home-{name}"
        env = dict(base, HOME=str(home), CISBRIDGE_LOG_DIR=str(tmp / "log"))
        if named:
            named_file = tmp / f"named-{name}.toml"
            named_file.write_text(f'allowed_origins = ["{ORIGIN}"]\n[logging]\nlevel = "info"\n')
            env["CISBRIDGE_CONFIG"] = str(named_file)
        else:
            system = tmp / f"xdg-system-{name}" / "cisbridge" / "config.toml"
            system.parent.mkdir(parents=True)
            system.write_text(f'allowed_origins = ["{ORIGIN}", "https://other.example.nhs.uk"]\n[agent]\nkind = "none"\n')
            user = home / ".config" / "cisbridge" / "config.toml"
            user.parent.mkdir(parents=True)
            user.write_text(f'allowed_origins = ["{ORIGIN}"]\n[logging]\nlevel = "info"\n')
            env["XDG_CONFIG_DIRS"] = str(system.parent.parent)
        return env

    def forget_cache(home: Path):
        return lambda: shutil.rmtree(home / ".cache", ignore_errors=True)

    launcher = [*launcher_argv(py), CALLER]
    return {
        "pass": ([py, "-c", "pass"], dict(base), None),
        "launcher form, CISBRIDGE_CONFIG": (launcher, form("named", True), None),
        "launcher form, CISBRIDGE_CONFIG, cold cache": (launcher, form("named-cold", True), forget_cache(tmp / "home-named-cold")),
        "launcher form, system + user config": (launcher, form("real", False), None),
        "launcher form, system + user config, cold cache": (launcher, form("cold", False), forget_cache(tmp / "home-cold")),
        "python -m cisbridge host, CISBRIDGE_CONFIG": ([py, "-m", "cisbridge", "host", CALLER], form("module", True), None),
    }


def main() -> int:
    ap = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    ap.add_argument("--quick", action="store_true", help="fewer iterations (a smoke run)")
    ap.add_argument("--cold-start", action="store_true", help="only the cold start part")
    args = ap.parse_args()
    scale = 10 if args.quick else 1

    tmp = Path(tempfile.mkdtemp(prefix="cisbridge-bench-"))
    config = tmp / "config.toml"
    config.write_text(f'allowed_origins = ["{ORIGIN}"]\n[logging]\nlevel = "info"\n')
    env = dict(os.environ, CISBRIDGE_CONFIG=str(config), CISBRIDGE_LOG_DIR=str(tmp / "log"), XDG_CACHE_HOME=str(tmp / "cache"))
    from cisbridge.install.installer import launcher_argv

    host_argv = [*launcher_argv(checkout_python()), CALLER]
    echo = build_echo(tmp)

    print(f"machine: {platform.machine()}, {os.cpu_count()} cores, {platform.python_implementation()} {platform.python_version()}, {platform.platform()}")
    results: dict[str, str] = {}

    # 1. cold start, interleaved
    cold = cold_start_forms(tmp)
    runs = max(40 // scale, 5)
    times: dict[str, list[float]] = {name: [] for name in cold}
    for _ in range(runs):
        for name, (argv, form_env, before) in cold.items():
            if before:
                before()
            times[name].append(cold_start(argv, form_env, wait_frame=name != "pass"))
    b = statistics.median(times["pass"])
    results["python -c pass (the launchers' interpreter)"] = f"{b:.1f} ms"
    for name in cold:
        if name != "pass":
            m = statistics.median(times[name])
            goal = " (goal <= 2.0x)" if name.startswith("launcher") else ""
            results[f"cold start (spawn -> ready), {name}"] = f"{m:.1f} ms: {m / b:.2f}x{goal}"
    if args.cold_start:
        show(results)
        return 0

    # 2. sequential round trips, alternating blocks; pinned to one core, then not
    n = 10_000 // scale
    all_cpus = os.sched_getaffinity(0)
    for label, cpus in (("pinned to one core", {min(all_cpus)}), ("unpinned", all_cpus)):
        os.sched_setaffinity(0, cpus)  # inherited by the processes started next
        host, c = Peer(host_argv, env), Peer([str(echo)], env)
        round_trips(host, 500)
        round_trips(c, 500)
        ht, ct = [], []
        for _ in range(10):
            ht += round_trips(host, n // 10)
            ct += round_trips(c, n // 10)
        h, b = statistics.median(ht), statistics.median(ct)
        results[f"getStatus round trip, {label} (median of {n:,})"] = (
            f"{h:.1f} us vs C echo {b:.1f} us: {h / b:.2f}x (goal <= 2.0x); p95 {statistics.quantiles(ht, n=20)[-1]:.1f} us"
        )
        if label != "unpinned":
            nt = round_trips(host, n // 2, "getTicketNoAuth")
            results["getTicketNoAuth round trip, none agent, pinned (median)"] = f"{statistics.median(nt):.1f} us"
            host.close()
            c.close()

    # 3. 64 in flight
    hr = statistics.median(in_flight(host, 20_000 // scale) for _ in range(3))
    cr = statistics.median(in_flight(c, 20_000 // scale) for _ in range(3))
    results["64 in flight throughput"] = f"{hr:,.0f} req/s vs C echo {cr:,.0f} req/s: {hr / cr:.2f} of C"

    # 4. memory
    idle_host = Peer(host_argv, env)
    time.sleep(0.2)
    idle = idle_host.rss_kb()
    idle_host.close()
    before = host.rss_kb()
    total = 100_000 // scale
    done = 0
    while done < total:
        k = min(10_000, total - done)
        in_flight(host, k)
        done += k
    after = host.rss_kb()
    results["idle RSS"] = f"{idle / 1024:.1f} MB (goal <= 30 MB)"
    results[f"RSS growth after {total:,} more requests"] = f"{(after - before) / 1024:+.2f} MB (goal <= 1 MB)"
    host.close()
    c.close()

    show(results)
    return 0


def show(results: dict[str, str]) -> None:
    width = max(map(len, results))
    for key, value in results.items():
        print(f"{key:<{width}}  {value}")


if __name__ == "__main__":
    raise SystemExit(main())
