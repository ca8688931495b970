"""getStatus: what the host, agent and readers look like. Needs no card or agent."""

from __future__ import annotations

from cisbridge import PROTOCOL, __version__
from cisbridge import protocol as p


def get_status(ctx, params: p.NoParams):
    monitor = ctx.service.monitor
    if monitor is not None and not monitor.ready_now():
        return _after_first_look(ctx, monitor)  # only just started: its first look takes ms
    service = ctx.service
    return _status(service, service.agent.session())


async def _after_first_look(ctx, monitor) -> p.Status:
    await ctx.run_blocking(monitor.wait_ready, 0.5)
    service = ctx.service
    return _status(service, service.agent.session())


def status_now(service, agent) -> p.Status | None:
    """getStatus on the host's reader thread (Service.answer_now)."""
    session = agent.session_now()
    return None if session is None else _status(service, session)


def _status(service, session: p.Session) -> p.Status:
    readers, pcsc = service.readers()
    return p.Status(
        host=__version__,
        protocol=PROTOCOL,
        agent=service.config.agent.kind,
        readers=readers,
        cardPresent=any(r.cardPresent for r in readers),
        session=session,
        pcsc=pcsc,
        token=service.card.chosen_label if service.card is not None else None,
    )
