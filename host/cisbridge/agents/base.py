"""The one narrow interface every identity agent implements.

An agent turns "this page wants a ticket" into a ticket: the built-in GAS agent
logs the card in at GAS itself; the Ticket API agent asks the NHS Identity
Agent.  The service owns the agent for the host's lifetime.
"""

from __future__ import annotations

import abc
import threading
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
        #: Held by the host's reader thread while it answers from
        #: session_now/ticket_now, and by the agent while it ends or starts a
        #: session, so a page never gets a ticket after its sessionEnded.
        self.state_lock = threading.Lock()

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

    # The host's reader thread answers getStatus and getTicketNoAuth itself when
    # the agent can tell at once, without the event loop (a round trip then
    # costs what a plain pipe echo does).  Both are called under state_lock,
    # must have no side effect beyond what is documented, and must not touch
    # the event loop.  The defaults send every such request to the loop.

    def session_now(self) -> Session | None:
        """session(), from the reader thread; None: only the event loop can tell."""
        return None

    def ticket_now(self) -> tuple[bool, str | None]:
        """(True, what getTicketNoAuth answers) when it is at hand, else (False, None).

        May note the use of a live session (its idle timer restarts)."""
        return False, None

    def card_removed(self, reader: str) -> None:
        """The card left ``reader``: end the user's session if it was theirs."""

    async def close(self) -> None:
        """Release everything (the host is exiting). Must return within 0.5 s."""
