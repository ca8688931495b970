"""Asking for the passcode and logging the card in: one loop for every caller.

``sign`` (a batch of EPS signatures) and the GAS agent (a login challenge)
both come through :func:`login_with_prompts`, so the rules are the same
everywhere: never prompt for a locked card, say how many tries are left when
the card says, re-prompt after a wrong passcode a bounded number of times, and
keep the passcode only for the ``C_Login`` call.

Callers hold ``card.batch_lock`` from the login to their last card call and
call ``card.end_batch()`` at the end (see :func:`sign_challenge`).
"""

from __future__ import annotations

from typing import TYPE_CHECKING, Any

from cisbridge.card import get_card
from cisbridge.protocol import CisError, ErrorCode, PinPromptData

if TYPE_CHECKING:
    from cisbridge.card.token import CardToken, TokenStatus
    from cisbridge.context import RequestContext

#: Passcode prompts per request.  NHS cards lock after three wrong passcodes
#: (SPINE.md §7); a card that says it locked ends the loop sooner.
MAX_PIN_PROMPTS = 3


async def login_with_prompts(ctx: RequestContext, card: CardToken) -> TokenStatus:
    """Make sure ``card`` is logged in, prompting for the passcode if needed.

    Raises CisError PIN_LOCKED (no prompt shown), PIN_INCORRECT (after
    MAX_PIN_PROMPTS wrong passcodes; ``detail.attemptsLeft`` when known),
    USER_CANCELLED / TIMEOUT from the prompt, or the card's own errors.
    """
    status = await ctx.run_blocking(card.begin_batch)
    if status.logged_in:
        return status
    failure: CisError | None = None
    for _ in range(MAX_PIN_PROMPTS):
        if status.pin_locked:
            from cisbridge.card.token import pin_locked_error

            raise pin_locked_error()
        value = await ctx.prompt(
            "pin",
            PinPromptData(
                origin=ctx.origin,
                protectedPath=status.protected_path,
                attemptsLeft=status.attempts_left,
                retry=failure is not None,
            ),
        )
        if status.protected_path:
            pin = None  # the reader's PIN pad collects it
        elif isinstance(value, str) and value:
            pin = bytearray(value, "utf-8")
        else:
            # Nothing typed: ask again without spending one of the card's tries.
            failure = CisError(ErrorCode.PIN_INCORRECT, "No passcode was entered.", _detail(status))
            continue
        try:
            # card.login wipes the buffer itself, in its worker thread, once
            # C_Login is done with it: wiping it here too could race a login
            # still running after this request was cancelled.
            await ctx.run_blocking(card.login, pin)
            return status
        except CisError as exc:
            if exc.code != ErrorCode.PIN_INCORRECT:
                raise
            failure = exc
            status = await ctx.run_blocking(card.status)
    assert failure is not None
    raise failure


async def sign_challenge(ctx: RequestContext, challenge: bytes) -> tuple[bytes, bytes]:
    """For the GAS agent: sign a login challenge with CKM_SHA1_RSA_PKCS.

    Prompts for the passcode like ``sign`` does (no consent prompt: the user
    asked to log in).  Returns (signature, certificate DER).
    """
    card = get_card(ctx)
    async with card.batch_lock:
        try:
            await login_with_prompts(ctx, card)
            try:
                signature = await ctx.run_blocking(card.sign, "RS1", challenge)
            except CisError as exc:
                if exc.code != ErrorCode.SIGNING_FAILED:
                    raise
                raise CisError(ErrorCode.AUTHENTICATION_FAILED,
                               "The card could not sign the login challenge: " + exc.message) from None
            certificate = await ctx.run_blocking(card.certificate)
        finally:
            await ctx.run_blocking(card.end_batch)
    return signature, certificate


def _detail(status: TokenStatus) -> dict[str, Any] | None:
    left = status.attempts_left
    return None if left is None else {"attemptsLeft": left}
