"""A small native messaging client that plays the browser's part.

It spawns the real host (``python -m cisbridge host <caller>``) with a private
config, log dir and HOME, speaks frames over its stdin/stdout, and sorts what
comes back into responses (by id), prompts and events.
"""

from __future__ import annotations

import itertools
import json
import os
import queue
import signal
import struct
import subprocess
import sys
import threading
import time
from pathlib import Path
from typing import Any

DEV_CHROME_ID = "ekiaedepebiljeejbccahljdhmdiocpb"
CHROME_CALLER = f"chrome-extension://{DEV_CHROME_ID}/"
ORIGIN = "https://ehr.example.nhs.uk"
HEADER = struct.Struct("=I")


class HostClosed(Exception):
    pass


class Host:
    def __init__(
        self,
        workdir: Path,
        config: str | None = 'allowed_origins = ["https://ehr.example.nhs.uk"]\n',
        argv: list[str] | None = None,
        env: dict[str, str] | None = None,
    ):
        self.workdir = Path(workdir)
        self.workdir.mkdir(parents=True, exist_ok=True)
        self.log_dir = self.workdir / "log"
        full_env = dict(os.environ)
        full_env.update(
            CISBRIDGE_LOG_DIR=str(self.log_dir),
            HOME=str(self.workdir / "home"),
            XDG_CONFIG_HOME=str(self.workdir / "xdg-config"),
            XDG_CONFIG_DIRS=str(self.workdir / "xdg-system"),
            XDG_STATE_HOME=str(self.workdir / "xdg-state"),
            XDG_DATA_HOME=str(self.workdir / "xdg-data"),
            XDG_CACHE_HOME=str(self.workdir / "xdg-cache"),
        )
        full_env.pop("CISBRIDGE_CONFIG", None)
        if config is not None:
            path = self.workdir / "config.toml"
            path.write_text(config)
            full_env["CISBRIDGE_CONFIG"] = str(path)
        full_env.update(env or {})
        self.proc = subprocess.Popen(
            [sys.executable, "-m", "cisbridge", "host", *(argv if argv is not None else [CHROME_CALLER])],
            stdin=subprocess.PIPE,
            stdout=subprocess.PIPE,
            stderr=subprocess.PIPE,
            env=full_env,
            cwd=self.workdir,
        )
        self._frames: queue.Queue[Any] = queue.Queue()
        self._ids = itertools.count(1)
        self.responses: dict[Any, dict] = {}
        self.prompts: list[dict] = []
        self.events: list[dict] = []
        self._reader = threading.Thread(target=self._pump, daemon=True)
        self._reader.start()
        self.ready = self.next_frame(timeout=10)
        assert self.ready.get("event") == "ready", self.ready

    # ------------------------------------------------------------- reading

    def _pump(self) -> None:
        out = self.proc.stdout
        assert out is not None
        while True:
            head = out.read(4)
            if len(head) < 4:
                self._frames.put(HostClosed(head))
                return
            (size,) = HEADER.unpack(head)
            body = out.read(size)
            self._frames.put(json.loads(body))

    def next_frame(self, timeout: float = 5) -> dict:
        try:
            item = self._frames.get(timeout=timeout)
        except queue.Empty:
            raise TimeoutError(f"no frame from the host within {timeout} s") from None
        if isinstance(item, HostClosed):
            self._frames.put(item)
            raise item
        return item

    def _sort(self, frame: dict) -> None:
        if "prompt" in frame:
            self.prompts.append(frame)
        elif "event" in frame:
            self.events.append(frame)
        else:
            self.responses[frame["id"]] = frame

    def wait(self, predicate, timeout: float = 5):
        """Read frames until predicate() returns something truthy."""
        deadline = time.monotonic() + timeout
        while True:
            found = predicate()
            if found:
                return found
            remaining = deadline - time.monotonic()
            if remaining <= 0:
                raise TimeoutError("the host did not send what was expected")
            self._sort(self.next_frame(remaining))

    def response(self, request_id, timeout: float = 5) -> dict:
        return self.wait(lambda: self.responses.pop(request_id, None), timeout)

    def prompt(self, kind: str | None = None, timeout: float = 5) -> dict:
        def find():
            for i, frame in enumerate(self.prompts):
                if kind is None or frame["kind"] == kind:
                    return self.prompts.pop(i)
            return None

        return self.wait(find, timeout)

    def event(self, name: str, timeout: float = 5) -> dict:
        def find():
            for i, frame in enumerate(self.events):
                if frame["event"] == name:
                    return self.events.pop(i)
            return None

        return self.wait(find, timeout)

    # ------------------------------------------------------------- writing

    def send_bytes(self, data: bytes) -> None:
        assert self.proc.stdin is not None
        self.proc.stdin.write(data)
        self.proc.stdin.flush()

    def send_frame(self, payload: bytes) -> None:
        self.send_bytes(HEADER.pack(len(payload)) + payload)

    def send(self, method: str, params: dict | None = None, origin: str = ORIGIN, request_id=None) -> Any:
        request_id = next(self._ids) if request_id is None else request_id
        message: dict[str, Any] = {"id": request_id, "method": method, "origin": origin}
        if params is not None:
            message["params"] = params
        self.send_frame(json.dumps(message).encode())
        return request_id

    def call(self, method: str, params: dict | None = None, origin: str = ORIGIN, timeout: float = 5) -> dict:
        return self.response(self.send(method, params, origin), timeout)

    def reply(self, prompt: dict, value=None, cancel: bool = False, origin: str = ORIGIN) -> dict:
        params: dict[str, Any] = {"prompt": prompt["prompt"]}
        if cancel:
            params["cancel"] = True
        else:
            params["value"] = value
        return self.call("promptReply", params, origin)

    # ------------------------------------------------------------- ending

    def close_stdin(self) -> None:
        if self.proc.stdin and not self.proc.stdin.closed:
            self.proc.stdin.close()

    def terminate(self) -> None:
        self.proc.send_signal(signal.SIGTERM)

    def wait_exit(self, timeout: float = 5) -> int:
        return self.proc.wait(timeout)

    def stop(self) -> None:
        try:
            self.close_stdin()
        except OSError:
            pass
        try:
            self.proc.wait(5)
        except subprocess.TimeoutExpired:
            self.proc.kill()
            self.proc.wait()
        for stream in (self.proc.stdout, self.proc.stderr):
            if stream:
                stream.close()

    def log_text(self) -> str:
        return "".join(p.read_text(errors="replace") for p in sorted(self.log_dir.glob("*.log*")))

    def __enter__(self) -> Host:
        return self

    def __exit__(self, *exc) -> None:
        self.stop()
