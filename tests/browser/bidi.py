"""A small WebDriver BiDi client, for Firefox (no geckodriver needed)."""

from __future__ import annotations

import itertools
import json
from typing import Any

from websockets.sync.client import connect


class BiDiError(Exception):
    pass


class BiDi:
    def __init__(self, ws_url: str):
        self._ws = connect(ws_url, max_size=None, open_timeout=10).__enter__()
        self._ids = itertools.count(1)

    def send(self, method: str, params: dict[str, Any] | None = None, timeout: float = 30) -> dict:
        msg_id = next(self._ids)
        self._ws.send(json.dumps({"id": msg_id, "method": method, "params": params or {}}))
        while True:
            message = json.loads(self._ws.recv(timeout=timeout))
            if message.get("id") == msg_id:
                break
        if message.get("type") == "error":
            raise BiDiError(f"{method}: {message.get('error')}: {message.get('message')}")
        return message["result"]

    def evaluate_json(self, context: str, expression: str) -> Any:
        """Evaluates an expression whose value is JSON-serialisable and returns it decoded."""
        result = self.send(
            "script.evaluate",
            {"expression": f"(async () => JSON.stringify(await ({expression})))()", "target": {"context": context}, "awaitPromise": True},
        )
        if result.get("type") != "success":
            raise BiDiError(f"page threw: {result.get('exceptionDetails')}")
        return json.loads(result["result"]["value"])

    def close(self) -> None:
        self._ws.close()
