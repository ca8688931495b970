"""A small Chrome DevTools Protocol client over one websocket (flattened sessions)."""

from __future__ import annotations

import base64
import itertools
import json
import queue
import threading
import time
from typing import Any

from websockets.sync.client import connect


class CDPError(Exception):
    pass


class CDP:
    def __init__(self, ws_url: str):
        self._ws = connect(ws_url, max_size=None, open_timeout=10).__enter__()
        self._ids = itertools.count(1)
        self._waiting: dict[int, queue.Queue[dict]] = {}
        self._lock = threading.Lock()
        self.events: queue.Queue[dict] = queue.Queue()
        self._reader = threading.Thread(target=self._pump, daemon=True)
        self._reader.start()

    def _pump(self) -> None:
        try:
            while True:
                message = json.loads(self._ws.recv())
                if "id" in message:
                    with self._lock:
                        box = self._waiting.pop(message["id"], None)
                    if box is not None:
                        box.put(message)
                else:
                    self.events.put(message)
        except Exception:  # connection closed: waiters time out
            pass

    def send(self, method: str, params: dict[str, Any] | None = None, session: str | None = None, timeout: float = 30) -> dict:
        return self.answer(method, self.request(method, params, session), timeout)

    def request(self, method: str, params: dict[str, Any] | None = None, session: str | None = None) -> "queue.Queue[dict]":
        """Sends a command; its answer arrives in the returned queue (see `answer`)."""
        msg_id = next(self._ids)
        box: queue.Queue[dict] = queue.Queue()
        with self._lock:
            self._waiting[msg_id] = box
        message: dict[str, Any] = {"id": msg_id, "method": method, "params": params or {}}
        if session:
            message["sessionId"] = session
        self._ws.send(json.dumps(message))
        return box

    @staticmethod
    def answer(method: str, box: "queue.Queue[dict]", timeout: float) -> dict:
        try:
            reply = box.get(timeout=timeout)
        except queue.Empty:
            raise CDPError(f"{method}: no answer in {timeout} s") from None
        if "error" in reply:
            raise CDPError(f"{method}: {reply['error']}")
        return reply.get("result", {})

    def post(self, method: str, params: dict[str, Any] | None = None, session: str | None = None) -> None:
        """Sends a command without waiting for its answer (dropped when it comes)."""
        message: dict[str, Any] = {"id": next(self._ids), "method": method, "params": params or {}}
        if session:
            message["sessionId"] = session
        self._ws.send(json.dumps(message))

    def close(self) -> None:
        self._ws.close()


class Page:
    """One tab, attached with a flattened session."""

    def __init__(self, cdp: CDP, url: str | None, target_id: str | None = None):
        self.cdp = cdp
        self.target_id = target_id or cdp.send("Target.createTarget", {"url": "about:blank"})["targetId"]
        self.session = cdp.send("Target.attachToTarget", {"targetId": self.target_id, "flatten": True})["sessionId"]
        if url is not None:
            self.goto(url)

    @classmethod
    def attach(cls, cdp: CDP, target_id: str) -> "Page":
        """An existing tab or window (e.g. one the extension opened)."""
        return cls(cdp, None, target_id)

    def type(self, text: str) -> None:
        """Types into the focused element, as a keyboard would."""
        self.cdp.send("Input.insertText", {"text": text}, self.session)

    def press(self, key: str) -> None:
        codes = {"Enter": 13, "Escape": 27, "Tab": 9, "ArrowDown": 40, "ArrowUp": 38, " ": 32}
        base = {"key": key, "code": "Space" if key == " " else key, "windowsVirtualKeyCode": codes[key]}
        down = dict(base, type="keyDown")
        if key == "Enter":
            down["text"] = "\r"
        elif key == " ":
            down["text"] = " "
        # A key may close the window (Enter or Escape on a prompt); the browser
        # then may never acknowledge it, which is fine once the window is gone.
        if not self._input("Input.dispatchKeyEvent", down):
            return
        # The key's release goes to a window the press may be closing: no answer
        # is awaited (commands on one session run in order all the same).
        self.cdp.post("Input.dispatchKeyEvent", dict(base, type="keyUp"), self.session)

    def click(self, selector: str) -> None:
        """Clicks the middle of the element, as a mouse would (press and release)."""
        box = self.evaluate(
            f"(() => {{ const r = document.querySelector({json.dumps(selector)}).getBoundingClientRect();"
            " return {x: r.x + r.width / 2, y: r.y + r.height / 2, shown: r.width > 0 && r.height > 0}; })()"
        )
        if not box.pop("shown"):
            raise CDPError(f"{selector} is not shown: nothing to click")
        for kind in ("mouseMoved", "mousePressed", "mouseReleased"):
            event = {"type": kind, "x": box["x"], "y": box["y"], "button": "none" if kind == "mouseMoved" else "left"}
            if kind != "mouseMoved":
                event["clickCount"] = 1
            if kind == "mouseReleased":  # the click happens now and may close the window (a prompt's buttons do)
                self.cdp.post("Input.dispatchMouseEvent", event, self.session)
                return
            if not self._input("Input.dispatchMouseEvent", event):
                return

    def screenshot(self, path, selector: str | None = None, margin: int = 0) -> None:
        """Saves what the tab or window shows as a PNG (only the element
        `selector` and `margin` pixels around it, when given)."""
        params: dict[str, Any] = {"format": "png"}
        if selector is not None:
            params["clip"] = self.evaluate(
                f"(() => {{ const r = document.querySelector({json.dumps(selector)}).getBoundingClientRect(), m = {margin};"
                " return {x: Math.max(0, r.x - m), y: Math.max(0, r.y - m), width: r.width + 2 * m, height: r.height + 2 * m, scale: 1}; })()"
            )
        data = self.cdp.send("Page.captureScreenshot", params, self.session)["data"]
        with open(path, "wb") as out:
            out.write(base64.b64decode(data))

    def _input(self, method: str, event: dict, timeout: float = 5) -> bool:
        """Sends an input event; True once the page took it, False if the
        window closed meanwhile (its answer may then never come)."""
        box = self.cdp.request(method, event, self.session)
        deadline = time.monotonic() + timeout
        while True:
            try:
                self.cdp.answer(method, box, 0.1)
                return True
            except CDPError as exc:
                if not self.alive():
                    return False
                if "no answer" not in str(exc) or time.monotonic() > deadline:
                    raise

    def alive(self) -> bool:
        targets = self.cdp.send("Target.getTargets")["targetInfos"]
        return any(t["targetId"] == self.target_id for t in targets)

    def goto(self, url: str) -> None:
        self.cdp.send("Page.navigate", {"url": url}, self.session)
        self.evaluate(
            "new Promise(r => document.readyState === 'complete' ? r() : addEventListener('load', () => r(), {once: true}))"
        )

    def evaluate(self, expression: str, timeout: float = 30) -> Any:
        reply = self.cdp.send(
            "Runtime.evaluate",
            {"expression": expression, "awaitPromise": True, "returnByValue": True, "timeout": timeout * 1000},
            self.session,
            timeout=timeout + 5,
        )
        if "exceptionDetails" in reply:
            raise CDPError(f"page threw: {reply['exceptionDetails']}")
        return reply["result"].get("value")

    def close(self) -> None:
        try:
            self.cdp.send("Target.closeTarget", {"targetId": self.target_id})
        except CDPError as exc:  # already closed
            if "No target" not in str(exc):
                raise
