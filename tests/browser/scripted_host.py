"""The real cisbridge host, with scripted `getTicket` and `sign` actions that
prompt as the real ones will (passcode, role, signing consent), and a scripted
`getCertificate` that plays a card removal (events, then CARD_REMOVED).

It stands in for the card and agent actions that arrive with their own issues,
so the browser tests can drive the extension's prompt windows against the real
host core (framing, service, prompts, cancel).  What the scripted actions
return is derived from what the person typed and chose, so a test can check
that the answers crossed every hop intact.  Run by the per-profile launcher as
`python scripted_host.py <caller…>`.
"""

from __future__ import annotations

import base64
import hashlib
import sys

from cisbridge import protocol as p
from cisbridge import service

ROLES = [
    p.Role(id="R8000", org="Leeds Teaching Hospitals", orgCode="RR8", name="Clinical Practitioner"),
    p.Role(id="R8003", org="Bramley Surgery", orgCode="B86001", name="General Medical Practitioner"),
]


async def get_ticket(ctx, params):
    passcode = await ctx.prompt("pin", p.PinPromptData(origin=ctx.origin, protectedPath=False, attemptsLeft=3))
    role = await ctx.prompt("role", p.RolePromptData(roles=ROLES))
    return p.Ticket(ticket=f"ticket:{role}:{digest(str(passcode).encode())}")


async def sign(ctx, params):
    await ctx.prompt(
        "consent",
        p.ConsentPromptData(origin=ctx.origin, description=params.description or "", count=len(params.payloads), algorithm=params.algorithm),
    )
    passcode = str(await ctx.prompt("pin", p.PinPromptData(origin=ctx.origin, protectedPath=False, attemptsLeft=1)))
    signatures = [p.Signature(id=item.id, signature=digest(passcode.encode() + base64.b64decode(item.payload))) for item in params.payloads]
    return p.SignResult(certificate="", signatures=signatures, failed_signatures=[], algorithm=params.algorithm)


async def get_certificate(ctx, params):
    """Plays a card being pulled out mid-request: the events the reader monitor sends, then the error."""
    ctx.emit("cardRemoved", p.CardEventData(reader="Virtual PCD 00 00"))
    ctx.emit("sessionEnded", p.SessionEndedData(reason="cardRemoved"))
    raise p.CisError(p.ErrorCode.CARD_REMOVED, "The smartcard was removed. Insert it again and retry.")


def digest(data: bytes) -> str:
    return base64.b64encode(hashlib.sha256(data).digest()).decode()


if __name__ == "__main__":
    service.HANDLERS["getTicket"] = "__main__:get_ticket"
    service.HANDLERS["sign"] = "__main__:sign"
    service.HANDLERS["getCertificate"] = "__main__:get_certificate"
    from cisbridge.host import main

    sys.exit(main(sys.argv[1:]))
