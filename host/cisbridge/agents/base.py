"""The one narrow interface every identity agent implements.

An agent turns "this page wants a ticket" into a ticket: the built-in GAS agent
logs the card in at GAS itself; the Ticket API agent asks the NHS Identity
Agent.  The service owns the agent for the host's lifetime.
"""

from __future__ import annotations

import abc
from typing import TYPE_CHECKING, Any, Awaitable, Protocol

from cisbridge.protocol import Session

NO_SESSION = Session(active=False)

if TYPE_CHECKING:
    from cisbridge.config import Config
    from cisbridge.context import RequestContext


class AgentHost(Protocol):
    """What the service offers an agent outside any request."""

    def emit(self, event: str, data: Any) -> None:
        """Broadcast an event frame (the agent uses ``sessionEnded``)."""
        ...

    async def run_blocking(self, fn: Any, *args: Any) -> Any: ...


class Agent(abc.ABC):
    #: the ``[agent] kind`` this class serves; reported in ``ready`` and ``getStatus``
    kind: str

    def __init__(self, config: Config, host: AgentHost) -> None:
        self.config = config
        self.host = host

    @abc.abstractmethod
    def get_ticket(self, ctx: RequestContext) -> Awaitable[str] | str:
        """The ticket of the live session, or authenticate (prompting) to get one."""

    @abc.abstractmethod
    def get_ticket_no_auth(self, ctx: RequestContext) -> Awaitable[str | None] | str | None:
        """The ticket of the live session or None. Never prompts.

        May return the value directly (no await) when it is at hand: the
        service then answers without scheduling a task.
        """

    def session(self) -> Session:
        """What getStatus says of the session; never the ticket itself."""
        return NO_SESSION

    def card_removed(self, reader: str) -> None:
        """The card left ``reader``: end the user's session if it was theirs."""

    async def close(self) -> None:
        """Release everything (the host is exiting). Must return within 0.5 s."""
