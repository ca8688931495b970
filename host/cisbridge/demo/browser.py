"""Chromium with the extension and a private profile, driven over the DevTools protocol."""

from __future__ import annotations

import base64
import contextlib
import json
import os
import signal
import subprocess
import threading
import time
from pathlib import Path
from typing import Any

from cisbridge.demo.parts import EXTENSION_ID

PROMPT_URL = f"chrome-extension://{EXTENSION_ID}/prompt.html"
#: the prompt windows' height on a desktop (the extension's PROMPT_HEIGHT)
PROMPT_HEIGHT = 480


class DemoError(Exception):
    """A step of the demo did not happen; the message says what was seen."""


class Chromium:
    """One Chromium process with its own profile; ``cdp`` is the DevTools connection."""

    def __init__(self, executable: str, profile: Path, extension: Path, cdp_module: Any, *,
                 headless: bool, env: dict[str, str], log_file: Path, url: str = "about:blank"):
        self.cdp_module = cdp_module
        self.profile = profile
        flags = [
            f"--user-data-dir={profile}",
            f"--load-extension={extension}", f"--disable-extensions-except={extension}",
            "--disable-background-networking", "--disable-component-update", "--disable-sync",
            "--no-first-run", "--no-default-browser-check", "--disable-quic",
            "--remote-debugging-port=0",
        ]
        if headless:
            # --window-size sizes every window, the prompts too: only where nobody sees them
            # (the prompt screenshots are laid out at the desktop width).
            flags += ["--headless=new", "--disable-gpu", "--window-size=1180,760"]
        if os.geteuid() == 0:
            flags.append("--no-sandbox")  # Chromium refuses to run as root with its sandbox
        with open(log_file, "wb") as log:
            self.proc = subprocess.Popen(
                [executable, *flags, url], stdin=subprocess.DEVNULL, stdout=log, stderr=log,
                env=env, start_new_session=True,
            )
        try:
            self.cdp = cdp_module.CDP(self._wait_devtools(headless, log_file))
        except BaseException:  # Ctrl-C or a failed start: no browser may outlive the demo
            self._kill()
            raise

    def _wait_devtools(self, headless: bool, log_file: Path) -> str:
        port_file = self.profile / "DevToolsActivePort"
        deadline = time.monotonic() + 30
        while not (port_file.is_file() and len(port_file.read_text().splitlines()) >= 2):
            if self.proc.poll() is not None:
                hint = "" if headless else " (no usable display? try --headless)"
                raise DemoError(f"Chromium exited at start (code {self.proc.returncode}){hint}:\n"
                                + _tail(log_file))
            if time.monotonic() > deadline:
                raise DemoError("Chromium did not start in 30 s:\n" + _tail(log_file))
            time.sleep(0.03)
        port, path = port_file.read_text().splitlines()[:2]
        return f"ws://127.0.0.1:{port}{path}"

    # --------------------------------------------------------------- targets

    def open(self, url: str):
        return self.cdp_module.Page(self.cdp, url)

    def attach(self, target_id: str):
        return self.cdp_module.Page.attach(self.cdp, target_id)

    def page_targets(self) -> list[dict]:
        return [t for t in self.cdp.send("Target.getTargets")["targetInfos"] if t["type"] == "page"]

    def prompt_targets(self) -> list[dict]:
        return [t for t in self.page_targets() if t["url"].startswith(PROMPT_URL)]

    def wait_prompt(self, kind: str, seen: set[str], timeout: float, unless=None):
        """The extension's next prompt window of ``kind`` (pin, role, consent), loaded and attached;
        None if ``unless()`` comes true first (the flow went on without this prompt)."""
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            if unless is not None and unless():
                return None
            fresh = [t for t in self.prompt_targets() if t["targetId"] not in seen]
            if fresh:
                window = self.attach(fresh[0]["targetId"])
                seen.add(fresh[0]["targetId"])
                while time.monotonic() < deadline:
                    try:  # the window may still be loading prompt.html
                        shown = window.evaluate(f"!document.getElementById({json.dumps(kind)})?.hidden "
                                                "&& !!document.getElementById('origin')?.textContent")
                        if shown:
                            return window
                    except self.cdp_module.CDPError:
                        pass
                    time.sleep(0.02)
            time.sleep(0.02)
        raise DemoError(f"no {kind} prompt window opened within {timeout:.0f} s")

    # ------------------------------------------------------------------ input

    def click(self, page, selector: str, closes: bool = False) -> None:
        """A left click in the middle of the element, as a mouse would.

        ``closes``: the click closes its window (a prompt's button), so the
        browser never acknowledges the release; it is sent without waiting."""
        point = page.evaluate(
            "(() => { const e = document.querySelector(%s); if (!e) return null;"
            " e.scrollIntoView({block: 'center'}); const r = e.getBoundingClientRect();"
            " return [r.x + r.width / 2, r.y + r.height / 2]; })()" % json.dumps(selector)
        )
        if point is None:
            raise DemoError(f"nothing to click: {selector} is not in {page.evaluate('location.href')}")
        x, y = point
        self.cdp.send("Input.dispatchMouseEvent", {"type": "mouseMoved", "x": x, "y": y, "button": "none"}, page.session)
        self.cdp.send("Input.dispatchMouseEvent",
                      {"type": "mousePressed", "x": x, "y": y, "button": "left", "clickCount": 1}, page.session)
        release = {"type": "mouseReleased", "x": x, "y": y, "button": "left", "clickCount": 1}
        if not closes:
            self.cdp.send("Input.dispatchMouseEvent", release, page.session)
            return

        def send() -> None:
            with contextlib.suppress(self.cdp_module.CDPError):
                self.cdp.send("Input.dispatchMouseEvent", release, page.session, timeout=5)

        threading.Thread(target=send, name="demo-click", daemon=True).start()

    def type(self, page, text: str) -> None:
        """Types into the focused element, as a keyboard would."""
        self.cdp.send("Input.insertText", {"text": text}, page.session)

    def screenshot(self, page, path: Path, width: int | None = None) -> Path:
        """A PNG of the whole document; ``width`` lays it out at that width first
        (the prompt windows are 440 px wide on a desktop, wider in headless)."""
        if width is not None:
            self.cdp.send("Emulation.setDeviceMetricsOverride",
                          {"width": width, "height": PROMPT_HEIGHT, "deviceScaleFactor": 1, "mobile": False}, page.session)
        size = page.evaluate("[document.documentElement.scrollWidth, document.documentElement.scrollHeight]")
        clip = {"x": 0, "y": 0, "width": size[0], "height": min(size[1], 2000), "scale": 1}
        data = self.cdp.send("Page.captureScreenshot",
                             {"format": "png", "clip": clip, "captureBeyondViewport": True}, page.session)["data"]
        path.write_bytes(base64.b64decode(data))
        return path

    # ---------------------------------------------------------------- closing

    def alive(self) -> bool:
        return self.proc.poll() is None

    def close(self) -> None:
        try:
            self.cdp.send("Browser.close", timeout=3)
        except Exception:
            pass
        try:
            self.proc.wait(timeout=5)
        except subprocess.TimeoutExpired:
            pass
        self._kill()
        try:
            self.cdp.close()
        except Exception:
            pass

    def _kill(self) -> None:
        """Chromium and every process it started (its own session, so its group):
        politely, then not."""
        for sig, grace in ((signal.SIGTERM, 3), (signal.SIGKILL, None)):
            try:
                os.killpg(self.proc.pid, sig)
            except ProcessLookupError:
                break
            try:
                self.proc.wait(grace)
            except subprocess.TimeoutExpired:
                pass

def _tail(log_file: Path, n: int = 8) -> str:
    """The last lines of Chromium's log that are not D-Bus noise (no session bus here)."""
    try:
        lines = [line for line in log_file.read_text(errors="replace").splitlines() if "dbus" not in line]
    except OSError:
        return "    (no log)"
    return "\n".join(f"    {line}" for line in lines[-n:]) or "    (empty log)"
