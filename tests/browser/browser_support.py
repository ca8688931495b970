"""Real headless Chromium with the built extension and the real host.

The host is installed per profile (``<user-data-dir>/NativeMessagingHosts/``)
through a launcher script in the test's tmp dir, so nothing global is touched.

The real parts behind it (no stand-ins): SoftHSM2 cards made by
``cisbridge.card.testcard`` (``cards``), the GAS/SSB simulator in this process
(``simulator``), and this process's private pcscd with the vpcd virtual reader
(``pcscd``; every host inherits ``PCSCLITE_CSOCK_NAME`` for it).
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

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))
from support.pcsc import VirtualCard, available, process_pcscd  # noqa: E402

# libpcsclite in a host reads PCSCLITE_CSOCK_NAME at its first PC/SC call, and
# hosts inherit this process's environment: pick the private socket now, so no
# host ever talks to (or waits for) the machine's own pcscd.
PCSC_MISSING = available()
PCSCD = None if PCSC_MISSING else process_pcscd()

REPO = Path(__file__).resolve().parents[2]
SCREENSHOTS = REPO / "bench-results" / "screenshots"
#: Chromium resolves names under this domain to 127.0.0.1: http pages there
#: are plain-http pages on a non-loopback name (INSECURE_CONTEXT), served here.
TEST_DOMAIN = "cisbridge.test"
PIN = "2468"
ONE_ROLE, MANY_ROLES = "555000000001", "555000000002"
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


#: A small EHR page: "Log in with smartcard" gets a ticket, the page's server
#: asks the SSB for the role assertion (``/whoami``), and the page shows who
#: is signed in, in which role; a removed card signs the user out.
EHR = """<!doctype html><html lang=en><meta charset=utf-8><title>Test EHR</title>
<style>body{font:16px/1.4 system-ui,sans-serif;margin:0;color:#212b32;background:#f0f4f5}
header{background:#005eb8;color:#fff;padding:12px 24px;font-weight:600;font-size:20px}
main{padding:24px;max-width:640px}.card{background:#fff;padding:16px 20px;border-radius:4px}
button{font:inherit;background:#007f3b;color:#fff;border:0;padding:8px 16px;border-radius:4px}
dt{font-weight:600}dd{margin:0 0 8px}</style>
<header>Test EHR &mdash; cisbridge</header>
<main><div class=card><p id=state>Not signed in.</p><button id=login>Log in with smartcard</button>
<dl id=who hidden><dt>User</dt><dd id=name></dd><dt>Role</dt><dd id=role></dd>
<dt>Organisation</dt><dd id=org></dd></dl></div></main>
<script>
const $ = id => document.getElementById(id);
$('login').onclick = async () => {
  $('state').textContent = 'Waiting for your smartcard\u2026';
  try {
    const ticket = await cisAuth.getTicket();
    const who = await (await fetch('/whoami', {method: 'POST', body: ticket})).json();
    $('name').textContent = who.name + ' (' + who.uid + ')';
    $('role').textContent = who.role + ' (' + who.roleId + ')';
    $('org').textContent = who.org + ' (' + who.orgCode + ')';
    $('who').hidden = false; $('login').hidden = true; $('state').textContent = 'Signed in.';
  } catch (e) { $('state').textContent = 'Not signed in: ' + e.code + ' \u2014 ' + e.message; }
};
cisAuth.addEventListener('sessionended', () => {
  $('who').hidden = true; $('login').hidden = false; $('state').textContent = 'Signed out: the smartcard was removed.';
});
</script></html>""".encode()


class _Handler(BaseHTTPRequestHandler):
    def do_POST(self):  # noqa: N802
        """/whoami: the EHR back end checks the ticket with the SSB (``server.whoami``)."""
        ticket = self.rfile.read(int(self.headers.get("Content-Length", 0))).decode()
        whoami = getattr(self.server, "whoami", None)
        if self.path != "/whoami" or whoami is None:
            self.send_error(404)
            return
        body = json.dumps(whoami(ticket)).encode()
        self.send_response(200)
        self.send_header("Content-Type", "application/json")
        self.send_header("Content-Length", str(len(body)))
        self.end_headers()
        self.wfile.write(body)

    def do_GET(self):  # noqa: N802
        body = PROBE if self.path.startswith("/probe") else EHR if self.path.startswith("/ehr") else PAGE
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
    yield {
        "allowed": f"http://127.0.0.1:{port}", "other": f"http://localhost:{port}",
        "insecure": f"http://ehr.{TEST_DOMAIN}:{port}", "server": server,
    }
    server.shutdown()


MAKE_CARDS = """
import base64, json, sys
from cryptography.hazmat.primitives.serialization import Encoding
from cisbridge import testca
from cisbridge.card import softhsm_module, testcard
store, ca_dir, pin = sys.argv[1:4]
conf = testcard.make_store(store)
ca = testca.load_or_create(ca_dir)
certificates = {}
for uuid, label in (("555000000001", "one"), ("555000000002", "many")):
    card = testcard.create(label=label, pin=pin, uuid=uuid, softhsm_conf=conf, ca=ca)
    certificates[label] = base64.b64encode(card.certificate.public_bytes(Encoding.DER)).decode()
print(json.dumps({"conf": conf, "module": softhsm_module(), "ca_dir": ca_dir, "certificates": certificates}))
"""


@pytest.fixture(scope="session")
def cards(tmp_path_factory):
    """Two SoftHSM2 cards from the test CA, passcode PIN: label "one"
    (555000000001, one role) and "many" (555000000002, three roles);
    ``certificates`` maps each label to its certificate (base64 DER)."""
    from cisbridge.card import softhsm_module

    if not os.path.exists(softhsm_module()):
        pytest.skip("SoftHSM2 is not installed")
    work = tmp_path_factory.mktemp("browser-cards")
    # In a child process, so this process's SoftHSM state stays as the card tests left it.
    made = subprocess.run(
        [sys.executable, "-c", MAKE_CARDS, str(work / "softhsm"), str(work / "testca"), PIN],
        capture_output=True, text=True, timeout=120,
    )
    if made.returncode != 0:
        pytest.fail(f"could not make the test cards: {made.stderr[-2000:]}")
    return json.loads(made.stdout.strip().splitlines()[-1])


@pytest.fixture(scope="module")
def simulator(cards):
    """The GAS/SSB simulator over TLS, trusting the cards' CA."""
    from cisbridge import testca
    from cisbridge.sim.server import Simulator

    with Simulator(ca=testca.load_or_create(cards["ca_dir"]), tls=True, idle_time=600, max_time=1200) as sim:
        yield sim


def gas_config(site, cards, sim, label: str = "many") -> str:
    """Host config: the GAS agent at the simulator, the SoftHSM card `label`."""
    return (
        f'allowed_origins = ["{site["allowed"]}"]\n\n'
        f'[agent]\nkind = "gas"\nurl = "{sim.url}"\nca_file = "{sim.ca_file}"\ntimeout = 10\n\n'
        f'[pkcs11]\nmodule = "{cards["module"]}"\ntoken_label = "{label}"\n'
    )


@pytest.fixture(scope="module")
def pcsc_running():
    """The private pcscd, running before a module's hosts start (when it is installed):
    a host that found no pcscd only looks again after a back-off."""
    if PCSCD is not None:
        PCSCD.start()


def host_env(cards) -> dict[str, str]:
    env = {"SOFTHSM2_CONF": cards["conf"]}
    if PCSCD is not None:
        env["PCSCLITE_CSOCK_NAME"] = PCSCD.socket_path
    return env


@pytest.fixture
def pcscd():
    if PCSCD is None:
        pytest.skip(PCSC_MISSING)
    PCSCD.start()
    return PCSCD


@pytest.fixture
def virtual_card(pcscd):
    """A card for the first vpcd slot ("Virtual PCD 00 00"); not inserted yet."""
    card = VirtualCard(pcscd.vpcd["Virtual PCD"].port)
    yield card
    card.remove()


def screenshot(page: Page, name: str, selector: str | None = None) -> Path:
    """Saves what `page` shows (or its element `selector`) as bench-results/screenshots/<name>.png."""
    SCREENSHOTS.mkdir(parents=True, exist_ok=True)
    path = SCREENSHOTS / f"{name}.png"
    page.screenshot(path, selector, margin=16 if selector else 0)
    return path


def start(page: Page, expression: str) -> None:
    """Starts a cisAuth call without waiting; `finish` collects its outcome."""
    page.evaluate(
        f"window.__done = false; window.__outcome = window.cisAuth.{expression}"
        ".then(value => ({ok: true, value}), e => ({ok: false, name: e.name, code: e.code, message: e.message}))"
        ".finally(() => { window.__done = true; }); true"
    )


def done(page: Page) -> bool:
    """Whether the call `start` began has its outcome (without waiting for it)."""
    return page.evaluate("window.__done === true")


def finish(page: Page) -> dict:
    """The outcome of the call `start` began, once it has one."""
    return page.evaluate("window.__outcome")


def text(window: Page, element_id: str) -> str:
    return window.evaluate(f"document.getElementById('{element_id}').textContent")


def wait_for(predicate, timeout: float = 10, what: str = "condition") -> None:
    deadline = time.monotonic() + timeout
    while not predicate():
        if time.monotonic() > deadline:
            raise AssertionError(f"timed out waiting for {what}")
        time.sleep(0.05)


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
                "--remote-debugging-port=0", f"--host-resolver-rules=MAP *.{TEST_DOMAIN} 127.0.0.1",
                "about:blank",
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

    def wait_prompt(self, seen: set[str] = frozenset(), timeout: float = 10, step: float = 0.05) -> Page:
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
                    time.sleep(step)
                break
            time.sleep(step)
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

    def stop_hosts(self) -> None:
        """Ends the running hosts the polite way (SIGTERM: a GAS session is
        logged out); the next request starts a fresh one."""
        pids = [pid for pid in self.host_pids() if pid_alive(pid)]
        for pid in pids:
            os.kill(pid, signal.SIGTERM)
        wait_for(lambda: not any(pid_alive(pid) for pid in pids), what="the host to exit")

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
