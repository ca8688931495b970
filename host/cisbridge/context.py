"""What a request handler may do: the service's side of the seam.

Handlers (``cisbridge.actions``) and agents are written against this Protocol,
not against the service, so they can be read and tested on their own.
"""

from __future__ import annotations

from typing import TYPE_CHECKING, Any, Awaitable, Callable, Protocol, TypeVar

if TYPE_CHECKING:
    from cisbridge.config import Config
    from cisbridge.protocol import RequestId

T = TypeVar("T")


class RequestContext(Protocol):
    #: the request's id and the (already allowed) page origin it came from
    id: RequestId
    origin: str
    config: Config

    async def prompt(self, kind: str, data: Any) -> str | bool:
        """Ask the user through the extension's own UI and wait for the answer.

        Raises CisError(USER_CANCELLED) when the user cancels or the request is
        cancelled, CisError(TIMEOUT) when nobody answers in time.
        """
        ...

    async def run_blocking(self, fn: Callable[..., T], *args: Any) -> T:
        """Run a blocking call (card, DLL, network) off the event loop."""
        ...

    def emit(self, event: str, data: Any) -> None:
        """Send an unasked event frame (cardInserted, cardRemoved, sessionEnded)."""
        ...


Handler = Callable[["RequestContext", Any], "Awaitable[Any] | Any"]
