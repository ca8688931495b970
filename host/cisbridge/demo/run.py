"""``cisbridge demo``: every part started, the flow run, everything cleaned up."""

from __future__ import annotations

import contextlib
import os
import select
import shutil
import signal
import sys
import tempfile
import time
from pathlib import Path
from typing import Any, Callable

from cisbridge.demo import parts
from cisbridge.demo.browser import Chromium, DemoError

OK, FAIL = "✓", "✗"
#: the prompt windows' width on a desktop (the extension's PROMPT_WIDTH)
PROMPT_WIDTH = 440


def ms(seconds: float) -> str:
    return f"{seconds * 1000:.0f} ms"


class Demo:
    def __init__(self, args: Any, out=print):
        self.args = args
        self.out = out
        self.stack = contextlib.ExitStack()
        self.workdir: Path | None = None
        self.results: list[tuple[str, bool]] = []
        self.shots: list[Path] = []
        self.card = None  # the virtual card in the vpcd reader, when PC/SC is available
        self.chromium: Chromium | None = None

    # ------------------------------------------------------------ reporting

    def step(self, name: str, ok: bool, what: str, seconds: float | None = None) -> None:
        self.results.append((name, ok))
        timing = f" ({ms(seconds)})" if seconds is not None else ""
        self.out(f"{OK if ok else FAIL} {name}: {what}{timing}", flush=True)

    def note(self, text: str) -> None:
        self.out(f"  {text}", flush=True)

    def shot(self, page, name: str, width: int | None = None) -> None:
        assert self.chromium is not None
        path = self.chromium.screenshot(page, self.shots_dir / f"{len(self.shots) + 1:02d}-{name}.png", width)
        self.shots.append(path)

    # ---------------------------------------------------------------- setup

    def start(self) -> None:
        root = parts.repo_root()
        self.extension = parts.extension_dir(root)
        self.executable = parts.chromium()
        self.module = parts.softhsm()
        parts.websockets_available()
        self.cdp_module = parts.load_support(root, "tests/browser/cdp.py", "cisbridge_demo_cdp")
        pcsc, why_no_reader = (None, "--no-reader") if self.args.no_reader else parts.pcsc_support(root)

        self.workdir = Path(tempfile.mkdtemp(prefix="cisbridge-demo-"))
        self.stack.callback(self._remove_workdir)
        self.shots_dir = Path(self.args.screenshots).resolve()
        if self.headless:
            self.shots_dir.mkdir(parents=True, exist_ok=True)
            for old in self.shots_dir.glob("[0-9][0-9]-*.png"):
                old.unlink()  # screenshots of an earlier run would mislead

        from cisbridge import testca
        from cisbridge.card import testcard
        from cisbridge.sim.server import Simulator

        t = time.perf_counter()
        self.ca = testca.load_or_create(self.workdir / "ca")
        self.sim = Simulator(tls=True, ca=self.ca)
        self.stack.callback(self.sim.stop)  # registered first: an interrupted start is cleaned up too
        self.sim.start()
        self.note(f"simulator (GAS/SSB, TLS, test CA) at {self.sim.url} ({ms(time.perf_counter() - t)})")

        t = time.perf_counter()
        conf = testcard.make_store(self.workdir / "softhsm")
        self.testcard = testcard.create(uuid=self.args.user, label="cisbridge demo card",
                                        softhsm_conf=conf, ca=self.ca)
        self.note(f"software smartcard (SoftHSM2) for user {self.args.user} ({ms(time.perf_counter() - t)})")

        host_env = {
            "CISBRIDGE_CONFIG": str(self.workdir / "config.toml"),
            "CISBRIDGE_LOG_DIR": str(self.workdir / "host-log"),
            "SOFTHSM2_CONF": conf,
            # the host's config parse cache, with everything else, goes with the workdir
            "XDG_CACHE_HOME": str(self.workdir / "cache"),
        }
        if pcsc is not None:
            t = time.perf_counter()
            self.pcscd = pcsc.PrivatePcscd(self.workdir / "pcscd")
            reader = self.pcscd.add_vpcd("Virtual PCD")
            self.stack.callback(self.pcscd.stop)
            self.pcscd.start()
            self.card = pcsc.VirtualCard(reader.port)
            self.stack.callback(self.card.remove, 1.0)
            self.card.insert()
            host_env["PCSCLITE_CSOCK_NAME"] = self.pcscd.socket_path
            self.note(f"private pcscd with virtual reader \"{pcsc.READER}\", card inserted "
                      f"({ms(time.perf_counter() - t)})")
        else:
            self.note(f"no virtual reader ({why_no_reader}): card removal is not shown")

        from cisbridge.demo.backend import Backend

        self.backend = Backend(self.sim.url, str(self.sim.ca_file), self.ca.certificate).start()
        self.stack.callback(self.backend.stop)
        self.note(f"demo EHR page and back end at {self.backend.origin}/")

        config = parts.host_config(self.backend.origin, self.sim.url, str(self.sim.ca_file),
                                   self.module, self.testcard.label)
        (self.workdir / "config.toml").write_text(config)
        profile = self.workdir / "profile"
        manifest = parts.install_host(profile, self.workdir, host_env)
        self.note(f"host installed for the demo's private Chromium profile only ({manifest.name})")

        t = time.perf_counter()
        # A private HOME and TMPDIR: Chromium's files go where the cleanup looks.
        (self.workdir / "tmp").mkdir()
        env = dict(os.environ, HOME=str(self.workdir / "home"), TMPDIR=str(self.workdir / "tmp"))
        self.chromium = Chromium(
            self.executable, profile, self.extension, self.cdp_module, headless=self.headless,
            env=env, log_file=self.workdir / "chromium.log",
            url=f"{self.backend.origin}/" if not self.headless else "about:blank",
        )
        self.stack.callback(self._close_chromium)
        self.note(f"Chromium {'headless' if self.headless else 'on ' + os.environ.get('DISPLAY', '?')} "
                  f"with the extension ({ms(time.perf_counter() - t)})")

    @property
    def headless(self) -> bool:
        return self.args.headless or not os.environ.get("DISPLAY")

    def _close_chromium(self) -> None:
        assert self.chromium is not None and self.workdir is not None
        self.chromium.close()
        # Chromium closes the host's stdin; the host then exits within a second.
        pids_file = self.workdir / "host.pids"
        pids = [int(p) for p in pids_file.read_text().split()] if pids_file.exists() else []
        deadline = time.monotonic() + 3
        for pid in pids:
            while _alive(pid) and time.monotonic() < deadline:
                time.sleep(0.05)
            if _alive(pid):
                self.note(f"host process {pid} did not exit; stopping it")
                with contextlib.suppress(ProcessLookupError):
                    os.kill(pid, signal.SIGKILL)

    def _remove_workdir(self) -> None:
        if self.workdir is None:
            return
        if self.args.keep:
            self.out(f"kept {self.workdir} (--keep)")
        else:
            shutil.rmtree(self.workdir, ignore_errors=True)

    def close(self) -> None:
        self.stack.close()

    # ------------------------------------------------------------ the flow

    def wait_state(self, page, states: set[str], timeout: float) -> str:
        deadline = time.monotonic() + timeout
        while True:
            state = page.evaluate("document.body.dataset.state")
            if state in states:
                return state
            if time.monotonic() > deadline:
                message = page.evaluate("document.getElementById('message')?.textContent || ''")
                raise DemoError(f"the page stayed '{state}' (wanted {'/'.join(sorted(states))})"
                                + (f": {message}" if message else ""))
            time.sleep(0.01)

    def run_headless(self) -> None:
        assert self.chromium is not None
        chromium, timeout = self.chromium, self.args.timeout
        seen: set[str] = set()
        pin = self.testcard.pin

        def attempt(name: str, fn: Callable[[], tuple[str, float]]) -> bool:
            try:
                what, seconds = fn()
            except DemoError as exc:
                self.step(name, False, str(exc))
                return False
            self.step(name, True, what, seconds)
            return True

        page = None

        def page_state() -> str:
            return page.evaluate("document.body.dataset.state")

        def open_page() -> tuple[str, float]:
            nonlocal page
            t = time.perf_counter()
            page = chromium.open(f"{self.backend.origin}/")
            state = self.wait_state(page, {"ready", "no-extension"}, timeout)
            if state != "ready":
                raise DemoError(page.evaluate("document.getElementById('message').textContent"))
            seconds = time.perf_counter() - t
            host = page.evaluate("document.getElementById('st-host').textContent")
            status_ms = page.evaluate("document.body.dataset.firstStatusMs")
            reader = page.evaluate("document.getElementById('st-reader').textContent")
            self.shot(page, "page-ready")
            return (f"page loaded, extension ready, first getStatus answered by {host} in {status_ms} ms "
                    f"(mostly Chromium's first policy read, then the host's start); reader: {reader}"), seconds

        def log_in() -> tuple[str, float]:
            t = time.perf_counter()
            chromium.click(page, "#login")
            window = chromium.wait_prompt("pin", seen, timeout)
            chromium.type(window, pin)  # the passcode field has the focus
            shot_at = time.perf_counter()
            self.shot(window, "prompt-passcode", PROMPT_WIDTH)
            paused = time.perf_counter() - shot_at
            chromium.click(window, "#pin-submit", closes=True)
            # A card holder with one role is not asked to choose.
            window = chromium.wait_prompt("role", seen, timeout,
                                          unless=lambda: page_state() in ("logged-in", "ready"))
            roles = []
            if window is not None:
                roles = window.evaluate("[...document.querySelectorAll('.role-option')].map(l => l.textContent.trim())")
                if not roles:
                    raise DemoError("the role window lists no roles")
                chromium.click(window, ".role-option")
                shot_at = time.perf_counter()
                self.shot(window, "prompt-role", PROMPT_WIDTH)
                paused += time.perf_counter() - shot_at
                chromium.click(window, "#role button[type=submit]", closes=True)
            self.wait_state(page, {"logged-in", "ready"}, timeout)
            seconds = time.perf_counter() - t - paused
            if page.evaluate("document.body.dataset.state") != "logged-in":
                raise DemoError(page.evaluate("document.getElementById('message').textContent"))
            who = page.evaluate("document.getElementById('who').textContent")
            self.shot(page, "page-logged-in")
            chose = f"role chosen ({len(roles)} offered)" if roles else "the only role taken without asking"
            return (f"passcode prompt answered, {chose}, "
                    f"ticket validated by the back end: {who}"), seconds

        def sign() -> tuple[str, float]:
            t = time.perf_counter()
            chromium.click(page, "#sign")
            window = chromium.wait_prompt("consent", seen, timeout)
            count = window.evaluate("document.getElementById('consent-count').textContent")
            shot_at = time.perf_counter()
            self.shot(window, "prompt-consent", PROMPT_WIDTH)
            paused = time.perf_counter() - shot_at
            chromium.click(window, "#consent button[type=submit]", closes=True)
            window = chromium.wait_prompt("pin", seen, timeout)
            chromium.type(window, pin)
            chromium.click(window, "#pin-submit", closes=True)
            self.wait_state(page, {"signed", "logged-in"}, timeout)
            seconds = time.perf_counter() - t - paused
            rows = page.evaluate("[...document.querySelectorAll('#rx-rows tr')].map(r => r.dataset.verified)")
            if page.evaluate("document.body.dataset.state") != "signed" or not rows or set(rows) != {"true"}:
                raise DemoError(page.evaluate("document.getElementById('message').textContent"))
            self.shot(page, "page-signed")
            return (f"consent given for {count}, passcode answered, {len(rows)} signatures "
                    f"verified by the back end ✓"), seconds

        def remove_card() -> tuple[str, float]:
            assert self.card is not None
            deadline = time.monotonic() + timeout
            while not page.evaluate("window.cisAuth.getStatus().then(s => s.cardPresent)"):
                if time.monotonic() > deadline:
                    raise DemoError("the host never saw the virtual card in its reader")
                time.sleep(0.1)
            t = time.perf_counter()
            self.card.remove()
            self.wait_state(page, {"logged-out"}, timeout)
            seconds = time.perf_counter() - t
            events = page.evaluate("[...document.querySelectorAll('#events li')].map(l => l.lastChild.textContent)")
            names = [e.split(" ")[0] for e in events]
            if "cardremoved" not in names or "sessionended" not in names:
                raise DemoError(f"the page logged out but showed {events}")
            spine = page.evaluate("document.getElementById('message').textContent")
            self.shot(page, "page-card-removed")
            return f"page showed cardremoved and sessionended and logged out. {spine}", seconds

        steps = [("page", open_page), ("getTicket", log_in), ("sign", sign)]
        if self.card is not None:
            steps.append(("card removed", remove_card))
        for name, fn in steps:
            if not attempt(name, fn):
                self._show_logs()
                break

    def run_headed(self) -> None:
        assert self.chromium is not None
        self.out("")
        self.out(f"Chromium is open at {self.backend.origin}/ — click \"Log in with smartcard\".")
        self.out(f"The demo card's passcode is {self.testcard.pin} (a throwaway SoftHSM2 card).")
        interactive = self.card is not None and sys.stdin.isatty()
        if interactive:
            self.out("Press Enter here to remove the card, Enter again to insert it. Ctrl-C ends the demo.")
        else:
            self.out("Close Chromium or press Ctrl-C to end the demo.")
        while self.chromium.alive():
            if interactive and select.select([sys.stdin], [], [], 0.5)[0]:
                sys.stdin.readline()
                if self.card.inserted:
                    self.card.remove()
                    self.out("card removed")
                else:
                    self.card.insert()
                    self.out("card inserted")
            elif not interactive:
                time.sleep(0.5)
        self.results.append(("browser", True))

    def _show_logs(self) -> None:
        assert self.workdir is not None
        for log in (self.workdir / "host-log" / "host.log", self.workdir / "chromium.log"):
            if log.exists():
                # Chromium's log is mostly D-Bus complaints on a machine without a session bus.
                lines = [line for line in log.read_text(errors="replace").splitlines() if "dbus" not in line]
                tail = lines[-15:]
                self.out(f"--- last lines of {log.name}:")
                for line in tail:
                    self.out(f"    {line}")


def _alive(pid: int) -> bool:
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    try:  # a zombie has exited
        return Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[-1].split()[0] != "Z"
    except OSError:
        return False


def main(args: Any) -> int:
    def terminate(signum, frame):  # Ctrl-C and kill both end in the same cleanup
        raise KeyboardInterrupt

    previous = signal.signal(signal.SIGTERM, terminate)
    signal.signal(signal.SIGINT, terminate)  # also when started in the background, where it was ignored
    demo = Demo(args)
    interrupted = False
    try:
        print("cisbridge demo: starting", flush=True)
        demo.start()
        if demo.headless:
            demo.run_headless()
        else:
            demo.run_headed()
    except parts.Missing as exc:
        print(f"cisbridge demo: {exc}", file=sys.stderr)
        return 2
    except KeyboardInterrupt:
        print("\ncisbridge demo: stopping", flush=True)
        interrupted = True
    except DemoError as exc:
        print(f"cisbridge demo: {exc}", file=sys.stderr)
        demo.results.append(("start", False))
    finally:
        # A second Ctrl-C must not cut the cleanup short (it takes a few seconds at most).
        signal.signal(signal.SIGINT, signal.SIG_IGN)
        signal.signal(signal.SIGTERM, signal.SIG_IGN)
        try:
            demo.close()
        finally:
            signal.signal(signal.SIGINT, signal.default_int_handler)
            signal.signal(signal.SIGTERM, previous)
    failed = [name for name, ok in demo.results if not ok]
    if demo.shots:
        print(f"screenshots: {len(demo.shots)} in {demo.shots_dir}")
    if failed:
        print(f"cisbridge demo: failed at {', '.join(failed)}", file=sys.stderr)
        return 1
    if interrupted and demo.headless:
        print("cisbridge demo: interrupted; everything it started is stopped")
        return 130
    if demo.headless and demo.results:
        print(f"cisbridge demo: all {len(demo.results)} steps succeeded; everything it started is stopped")
    return 0

