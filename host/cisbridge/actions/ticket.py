"""getTicket and getTicketNoAuth: relayed to the configured identity agent."""

from __future__ import annotations

import inspect

from cisbridge import protocol as p


def get_ticket(ctx, params: p.GetTicketParams):
    outcome = ctx.service.agent.get_ticket(ctx)
    if inspect.isawaitable(outcome):
        return _wrap(outcome)
    return p.Ticket(outcome)


def get_ticket_no_auth(ctx, params: p.NoParams):
    outcome = ctx.service.agent.get_ticket_no_auth(ctx)
    if inspect.isawaitable(outcome):
        return _wrap(outcome)
    return p.Ticket(outcome)


def ticket_no_auth_now(service, agent) -> p.Ticket | None:
    """getTicketNoAuth on the host's reader thread (Service.answer_now)."""
    ok, ticket = agent.ticket_now()
    return p.Ticket(ticket) if ok else None


async def _wrap(outcome) -> p.Ticket:
    return p.Ticket(await outcome)
