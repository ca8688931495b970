"""getStatus: what the host, agent and readers look like. Needs no card or agent."""

from __future__ import annotations

from cisbridge import PROTOCOL, __version__
from cisbridge import protocol as p


def get_status(ctx, params: p.NoParams) -> p.Status:
    service = ctx.service
    readers, pcsc = service.readers()
    return p.Status(
        host=__version__,
        protocol=PROTOCOL,
        agent=ctx.config.agent.kind,
        readers=readers,
        cardPresent=any(r.cardPresent for r in readers),
        session=service.agent.session(),
        pcsc=pcsc,
        token=service.card.chosen_label if service.card is not None else None,
    )
