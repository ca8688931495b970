"""Shared pieces of the GAS agent tests (a module of its own: tests/ has several conftest.py)."""

from __future__ import annotations

from dataclasses import dataclass, field

from cisbridge import testca

ORIGIN = "https://ehr.example.nhs.uk"
PIN = "2468"
ONE_ROLE, MANY_ROLES, NO_ROLES = "555000000001", "555000000002", "555000000003"


@dataclass
class Cards:
    conf: str
    ca: testca.TestCA
    labels: dict[str, str] = field(default_factory=dict)



def gas_config(sim, label: str = "one", extra: str = "", timeout: float = 5) -> str:
    """A host config for the GAS agent against ``sim`` with the SoftHSM2 card ``label``."""
    from cisbridge.card import softhsm_module

    ca_line = f'ca_file = "{sim.ca_file}"\n' if sim.ca_file else ""
    return (
        f'allowed_origins = ["{ORIGIN}"]\n'
        f'[agent]\nkind = "gas"\nurl = "{sim.url}"\n{ca_line}timeout = {timeout}\n'
        f'[pkcs11]\nmodule = "{softhsm_module()}"\ntoken_label = "{label}"\n' + extra
    )


def login(host, pin: str = PIN, role: str | None = None, timeout: float = 20) -> dict:
    """getTicket answering the prompts as the user would."""
    rid = host.send("getTicket", {})
    prompt = host.prompt("pin", timeout=timeout)
    assert prompt["for"] == rid
    host.reply(prompt, pin)
    if role is not None:
        prompt = host.prompt("role", timeout=timeout)
        host.reply(prompt, role)
    return host.response(rid, timeout=timeout)
