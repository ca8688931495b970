"""``[agent] kind = "none"``: no identity agent configured.

getStatus, getCertificate and sign still work; tickets do not.
"""

from __future__ import annotations

from cisbridge.agents.base import NO_SESSION, Agent
from cisbridge.protocol import CisError, ErrorCode


class NoneAgent(Agent):
    kind = "none"

    def get_ticket(self, ctx):
        raise CisError(
            ErrorCode.AGENT_UNAVAILABLE,
            "No identity agent is configured, so no ticket can be issued. Ask your IT team "
            "to set [agent] kind = \"gas\" (with url and ca_file) or kind = \"ticketapi\" in "
            "the cisbridge configuration, then run `cisbridge doctor`.",
            {"agent": "none"},
        )

    def get_ticket_no_auth(self, ctx):
        return None

    def session_now(self):
        return NO_SESSION

    def ticket_now(self):
        return True, None
