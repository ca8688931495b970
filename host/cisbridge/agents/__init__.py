"""Identity agents: where tickets come from (CONTRACT.md §5 ``[agent] kind``)."""

from __future__ import annotations

import importlib
from typing import TYPE_CHECKING

if TYPE_CHECKING:
    from cisbridge.agents.base import Agent, AgentHost
    from cisbridge.config import Config

#: kind -> "module:class"; imported only when configured.
KINDS = {
    "none": "cisbridge.agents.none:NoneAgent",
    "gas": "cisbridge.agents.gas:GasAgent",
    "ticketapi": "cisbridge.agents.ticketapi:TicketApiAgent",
}


def create(config: Config, host: AgentHost) -> Agent:
    module_name, _, class_name = KINDS[config.agent.kind].partition(":")
    cls = getattr(importlib.import_module(module_name), class_name)
    return cls(config, host)
