"""getStatus: what the host, agent and readers look like. Needs no card or agent."""

from __future__ import annotations

from cisbridge import PROTOCOL, __version__
from cisbridge import protocol as p


def get_status(ctx, params: p.NoParams):
    monitor = ctx.service.monitor
    if monitor is not None and not monitor.wait_ready(0):
        return _after_first_look(ctx, monitor)  # only just started: its first look takes ms
    return _status(ctx)


async def _after_first_look(ctx, monitor) -> p.Status:
    await ctx.run_blocking(monitor.wait_ready, 0.5)
    return _status(ctx)


def _status(ctx) -> p.Status:
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
