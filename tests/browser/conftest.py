"""Real headless Chromium with the built extension and the real host.

The host is installed per profile (``<user-data-dir>/NativeMessagingHosts/``)
through a launcher script in the test's tmp dir, so nothing global is touched.
"""

from __future__ import annotations

import json
import os
import shutil
import signal
import subprocess
import sys
import threading
import time
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path

import pytest

sys.path.insert(0, str(Path(__file__).parent))

from cdp import CDP, CDPError, Page  # noqa: E402

REPO = Path(__file__).resolve().parents[2]
DIST = REPO / "extension" / "dist"
EXTENSION_ID = "ekiaedepebiljeejbccahljdhmdiocpb"
HOST_NAME = "org.cisbridge.host"

PAGE = b"<!doctype html><html lang=en><title>EHR test page</title><p>cisbridge browser test</p></html>"


#: A page that calls cisAuth.getStatus() as soon as it loads and tells its parent the outcome (for frame tests).
PROBE = (
    b"<!doctype html><html lang=en><title>probe</title><script>"
    b"window.cisAuth.getStatus().then(v => parent.postMessage({ok: true, origin: location.origin}, '*'),"
    b" e => parent.postMessage({ok: false, code: e.code, origin: location.origin}, '*'));"
    b"</script></html>"
)


class _Handler(BaseHTTPRequestHandler):
    def do_GET(self):  # noqa: N802
        body = PROBE if self.path.startswith("/probe") else PAGE
        self.send_response(200)
        self.send_header("Content-Type", "text/html; charset=utf-8")
        self.send_header("Content-Length", str(len(body)))
        self.end_headers()
        self.wfile.write(body)

    def log_message(self, *args):
        pass


@pytest.fixture(scope="module")
def site():
    """A real HTTP server on loopback: 127.0.0.1 is allowed, localhost (same port) is another origin."""
    server = ThreadingHTTPServer(("127.0.0.1", 0), _Handler)
    thread = threading.Thread(target=server.serve_forever, daemon=True)
    thread.start()
    port = server.server_address[1]
    yield {"allowed": f"http://127.0.0.1:{port}", "other": f"http://localhost:{port}"}
    server.shutdown()


class Browser:
    def __init__(self, workdir: Path, config: str | None, host_script: Path | None = None, host_env: dict[str, str] | None = None):
        if not (DIST / "manifest.json").is_file():
            pytest.fail("extension/dist is missing: run `npm run build` in extension/ (scripts/setup does)")
        chromium = shutil.which("chromium") or "/usr/bin/chromium"
        self.workdir = workdir
        self.profile = workdir / "profile"
        self.pid_file = workdir / "host.pids"
        if config is not None:
            self._install_host(config, host_script, host_env or {})
        env = dict(os.environ, HOME=str(workdir / "home"))
        self.proc = subprocess.Popen(
            [
                chromium, "--headless=new", "--no-sandbox", f"--user-data-dir={self.profile}",
                f"--load-extension={DIST}", f"--disable-extensions-except={DIST}",
                "--disable-background-networking", "--disable-component-update", "--disable-sync",
                "--no-first-run", "--no-default-browser-check", "--disable-quic", "--disable-gpu",
                "--remote-debugging-port=0", "about:blank",
            ],
            stdout=subprocess.DEVNULL,
            stderr=open(workdir / "chromium.log", "wb"),
            env=env,
            start_new_session=True,
        )
        port_file = self.profile / "DevToolsActivePort"
        deadline = time.monotonic() + 30
        while not (port_file.is_file() and len(port_file.read_text().splitlines()) >= 2):
            if self.proc.poll() is not None or time.monotonic() > deadline:
                raise RuntimeError(f"chromium did not start: see {workdir / 'chromium.log'}")
            time.sleep(0.05)
        port, path = port_file.read_text().splitlines()[:2]
        self.cdp = CDP(f"ws://127.0.0.1:{port}{path}")

    def _install_host(self, config: str, host_script: Path | None, host_env: dict[str, str]) -> None:
        config_path = self.workdir / "config.toml"
        config_path.write_text(config)
        launcher = self.workdir / "cisbridge-host"
        launcher.write_text(
            "#!/bin/sh\n"
            f"echo $$ >> '{self.pid_file}'\n"
            f"export CISBRIDGE_CONFIG='{config_path}' CISBRIDGE_LOG_DIR='{self.workdir / 'host-log'}'\n"
            + "".join(f"export {name}='{value}'\n" for name, value in host_env.items())
            + (f"exec '{sys.executable}' '{host_script}' \"$@\"\n" if host_script
               else f"exec '{sys.executable}' -m cisbridge host \"$@\"\n")
        )
        launcher.chmod(0o755)
        manifests = self.profile / "NativeMessagingHosts"
        manifests.mkdir(parents=True)
        (manifests / f"{HOST_NAME}.json").write_text(json.dumps({
            "name": HOST_NAME,
            "description": "cisbridge native host (browser test)",
            "path": str(launcher),
            "type": "stdio",
            "allowed_origins": [f"chrome-extension://{EXTENSION_ID}/"],
        }))

    def open(self, url: str) -> Page:
        return Page(self.cdp, url)

    def prompt_windows(self) -> list[dict]:
        targets = self.cdp.send("Target.getTargets")["targetInfos"]
        return [t for t in targets if t["url"].startswith(f"chrome-extension://{EXTENSION_ID}/prompt.html")]

    def wait_prompt(self, seen: set[str] = frozenset(), timeout: float = 10) -> Page:
        """The next prompt window the extension opens (one not in `seen`), loaded and attached."""
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            fresh = [t for t in self.prompt_windows() if t["targetId"] not in seen]
            if fresh:
                page = Page.attach(self.cdp, fresh[0]["targetId"])
                while time.monotonic() < deadline:
                    try:  # the window may still be navigating to prompt.html
                        if page.evaluate("!!document.getElementById('origin')?.textContent"):
                            return page
                    except CDPError:
                        pass
                    time.sleep(0.05)
                break
            time.sleep(0.05)
        raise AssertionError("no prompt window opened")

    def wait_no_prompt(self, timeout: float = 5) -> None:
        deadline = time.monotonic() + timeout
        while self.prompt_windows():
            if time.monotonic() > deadline:
                raise AssertionError(f"prompt windows still open: {self.prompt_windows()}")
            time.sleep(0.05)

    def host_pids(self) -> list[int]:
        if not self.pid_file.exists():
            return []
        return [int(line) for line in self.pid_file.read_text().split()]

    def close(self) -> None:
        try:
            self.cdp.send("Browser.close", timeout=5)
        except Exception:
            pass
        try:
            self.proc.wait(timeout=10)
        except subprocess.TimeoutExpired:
            os.killpg(self.proc.pid, signal.SIGKILL)
            self.proc.wait()
        self.cdp.close()


def pid_alive(pid: int) -> bool:
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    # a zombie is gone for our purposes
    try:
        return Path(f"/proc/{pid}/stat").read_text().split(")")[-1].split()[0] != "Z"
    except OSError:
        return False


def call(page: Page, expression: str) -> dict:
    """Runs `window.cisAuth.<expression>` in the page; returns {ok, value} or {ok: False, name, code, message}."""
    return page.evaluate(
        "(async () => {"
        "  if (!window.cisAuth) return {ok: false, missing: true};"
        f"  try {{ return {{ok: true, value: await window.cisAuth.{expression}}}; }}"
        "  catch (e) { return {ok: false, name: e.name, code: e.code, message: e.message, isError: e instanceof Error}; }"
        "})()"
    )
