"""The Ticket API agent against a real shared library with the Identity Agent's exports."""

from __future__ import annotations

import asyncio
import ctypes
import logging
import subprocess
import sys

import pytest

from cisbridge.agents import ticketapi
from cisbridge.agents.ticketapi import TicketApiAgent, probe
from cisbridge.protocol import CisError, ErrorCode

TICKET = "AQIC5wM2LY4Sfcy73z2zeTRzPNXOdr5U6mC2NyUVxy0BffY=@AAJTSQACMDE=#"


def fake_ticket(n: int) -> str:
    """The ticket the fake makes for ``ticketlen=n`` (same formula as the C)."""
    alphabet = "ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789+/=@#*"
    return "".join(alphabet[(i * 7 + 3) % len(alphabet)] for i in range(n))


def run(coro):
    return asyncio.run(coro)


def error_of(coro) -> CisError:
    with pytest.raises(CisError) as info:
        run(coro)
    return info.value


# ---------------------------------------------------------------- tickets


def test_get_ticket_returns_the_identity_agents_ticket(fake, make_agent):
    fake.script(f"getTicket ticket={TICKET}")
    agent, ctx = make_agent(fake.library)
    assert run(agent.get_ticket(ctx)) == TICKET
    assert fake.sizes("getTicket") == [ticketapi.INITIAL_BUFFER]


def test_get_ticket_no_auth_returns_the_live_sessions_ticket(fake, make_agent):
    fake.script(f"getTicketNoAuth ticket={TICKET}")
    agent, ctx = make_agent(fake.library)
    assert run(agent.get_ticket_no_auth(ctx)) == TICKET


def test_no_session_means_no_ticket_not_an_error(fake, make_agent):
    fake.script("getTicketNoAuth code=0x80100009")
    agent, ctx = make_agent(fake.library)
    assert run(agent.get_ticket_no_auth(ctx)) is None


def test_a_3_kb_ticket_is_read_whole_after_growing_the_buffer(fake, make_agent):
    fake.script("getTicket ticketlen=3072")
    agent, ctx = make_agent(fake.library)
    ticket = run(agent.get_ticket(ctx))
    assert len(ticket) == 3072
    assert ticket == fake_ticket(3072)
    # 512 was too small; the DLL said how much it needs (3072 + NUL) and got it.
    assert fake.sizes("getTicket") == [512, 3074]
    assert fake.calls().count("getTicket size=512 -> 0x80100004") == 1


def test_buffer_grows_by_doubling_when_the_dll_does_not_say_how_much(fake, make_agent):
    fake.script("getTicketNoAuth ticketlen=3000 used=silent")
    agent, ctx = make_agent(fake.library)
    assert run(agent.get_ticket_no_auth(ctx)) == fake_ticket(3000)
    assert fake.sizes("getTicketNoAuth") == [512, 1024, 2048, 4096]


def test_used_without_the_terminator_is_understood(fake, make_agent):
    fake.script(f"getTicket ticket={TICKET} nul=no")
    agent, ctx = make_agent(fake.library)
    assert run(agent.get_ticket(ctx)) == TICKET


def test_a_ticket_that_fills_the_buffer_exactly_is_not_truncated(fake, make_agent):
    # 511 characters + NUL fit 512 exactly; 512 characters do not.
    fake.script("getTicket ticketlen=511", "getTicket ticketlen=512")
    agent, ctx = make_agent(fake.library)
    assert run(agent.get_ticket(ctx)) == fake_ticket(511)
    assert run(agent.get_ticket(ctx)) == fake_ticket(512)
    assert fake.sizes("getTicket") == [512, 512, 514]


def test_the_buffer_never_grows_past_its_bound(fake, make_agent):
    fake.script("getTicket ticketlen=100000")
    agent, ctx = make_agent(fake.library)
    err = error_of(agent.get_ticket(ctx))
    assert err.code is ErrorCode.INTERNAL
    assert err.detail["agentCode"] == "0x80100004"
    assert max(fake.sizes("getTicket")) <= ticketapi.MAX_BUFFER


def test_an_empty_answer_is_not_a_ticket(fake, make_agent):
    fake.script("getTicket ticket=")
    agent, ctx = make_agent(fake.library)
    err = error_of(agent.get_ticket(ctx))
    assert err.code is ErrorCode.INTERNAL
    assert "not a ticket" in err.message


# ---------------------------------------------------------- error mapping

MAPPING = [
    ("0x80400001", "USER_ABORT", ErrorCode.USER_CANCELLED),
    ("0x80200004", "PIN_BLOCKED", ErrorCode.PIN_LOCKED),
    ("0x80400005", "AUTHSERVER_NOT_AVAILABLE", ErrorCode.AGENT_UNAVAILABLE),
    ("0x80800002", "NOT_INSTALLED", ErrorCode.AGENT_UNAVAILABLE),
    ("0x80800003", "NO_SERVERFOUND", ErrorCode.AGENT_UNAVAILABLE),
    ("0x80200002", "READER_NOT_AVAILABLE", ErrorCode.NO_READER),
    ("0x80200003", "SMARTCARD_NOT_VALID", ErrorCode.NO_CARD),
    ("0x80200006", "NO_CERT_FOUND", ErrorCode.NO_CERTIFICATE),
    ("0x80400002", "AUTHENTICATION_FAILED", ErrorCode.AUTHENTICATION_FAILED),
    ("0x80400007", "AUTH_NOT_VALID", ErrorCode.AUTHENTICATION_FAILED),
    ("0x80100007", "SERVER_COMM_FAILED", ErrorCode.AGENT_UNAVAILABLE),
]

#: what the fake's _TcktApi_getErrorDescription says for each code
DESCRIPTIONS = {
    "0x80400001": "The user aborted the authentication.",
    "0x80200004": "The PIN is blocked.",
    "0x80400005": "The authentication server is not available.",
    "0x80800002": "The Identity Agent is not installed.",
    "0x80800003": "No authentication server was found.",
    "0x80200002": "No card reader is available.",
    "0x80200003": "The smartcard is not valid.",
    "0x80200006": "No certificate was found on the card.",
    "0x80400002": "Authentication failed.",
    "0x80400007": "The authentication is not valid.",
    "0x80100007": "Communication with the Identity Agent failed.",
}


@pytest.mark.parametrize("method", ["getTicket", "getTicketNoAuth"])
@pytest.mark.parametrize(("hexcode", "name", "expected"), MAPPING, ids=[m[1] for m in MAPPING])
def test_ticket_api_codes_map_to_contract_codes(fake, make_agent, method, hexcode, name, expected):
    fake.script(f"{method} code={hexcode}")
    agent, ctx = make_agent(fake.library)
    call = agent.get_ticket if method == "getTicket" else agent.get_ticket_no_auth
    err = error_of(call(ctx))
    assert err.code is expected
    assert err.detail["agentCode"] == hexcode
    assert err.detail["agentError"] == name
    assert err.detail["agentMessage"] == DESCRIPTIONS[hexcode]
    assert DESCRIPTIONS[hexcode] in err.message  # the DLL's own words reach the person
    assert err.detail["call"] == method


def test_an_unknown_code_is_internal_and_keeps_the_raw_code(fake, make_agent):
    fake.script("getTicket code=0x81000005")  # TCK_ERR_GRP_WINDOWS | ERROR_ACCESS_DENIED
    agent, ctx = make_agent(fake.library)
    err = error_of(agent.get_ticket(ctx))
    assert err.code is ErrorCode.INTERNAL
    assert err.detail["agentCode"] == "0x81000005"
    assert "agentError" not in err.detail
    assert "0x81000005" in err.message


def test_every_mapped_code_has_a_message_for_people():
    for code, tck in ticketapi.TCK_CODES.items():
        assert tck.message.endswith((".", ")")), tck.name
        assert 0x80000000 & code and tck.code in ErrorCode


# ------------------------------------------------------- library loading


def test_a_missing_library_names_the_path_and_the_config_key(tmp_path, make_agent):
    missing = tmp_path / "nowhere" / "TicketApiDll.so"
    agent, ctx = make_agent(missing)
    err = error_of(agent.get_ticket(ctx))
    assert err.code is ErrorCode.AGENT_UNAVAILABLE
    assert str(missing) in err.message
    assert "[agent] library" in err.message
    assert err.detail["library"] == str(missing)
    # getTicketNoAuth says the same: a missing agent is not "no session".
    assert error_of(agent.get_ticket_no_auth(ctx)).code is ErrorCode.AGENT_UNAVAILABLE


def test_a_library_without_the_exports_is_refused(tmp_path, make_agent):
    src = tmp_path / "other.c"
    src.write_text("int something_else(void) { return 1; }\n")
    lib = tmp_path / "libother.so"
    subprocess.run(["gcc", "-shared", "-fPIC", "-o", str(lib), str(src)], check=True)
    agent, ctx = make_agent(lib)
    err = error_of(agent.get_ticket(ctx))
    assert err.code is ErrorCode.AGENT_UNAVAILABLE
    assert "_TcktApi_Initialize" in err.message
    assert str(lib) in err.message


@pytest.mark.skipif(sys.platform == "win32", reason="Windows has a default library name")
def test_no_library_configured_outside_windows_is_agent_unavailable(make_agent):
    agent, ctx = make_agent(None)
    err = error_of(agent.get_ticket(ctx))
    assert err.code is ErrorCode.AGENT_UNAVAILABLE
    assert "[agent] library" in err.message


def test_exports_without_the_leading_underscore_are_found_too(fake_undecorated, make_agent):
    fake_undecorated.script(f"getTicket ticket={TICKET}")
    agent, ctx = make_agent(fake_undecorated.library)
    assert run(agent.get_ticket(ctx)) == TICKET


# --------------------------------------------------- Initialize / Finalize


def test_initialize_failing_is_agent_unavailable_with_the_dlls_reason(fake, make_agent):
    fake.script("Initialize code=1 lasterror=0x80800002", f"getTicket ticket={TICKET}")
    agent, ctx = make_agent(fake.library)
    err = error_of(agent.get_ticket(ctx))
    assert err.code is ErrorCode.AGENT_UNAVAILABLE
    assert err.detail["agentCode"] == "0x80800002"
    assert err.detail["call"] == "Initialize"
    assert "The Identity Agent is not installed." in err.message
    assert fake.count("getTicket") == 0
    # Not remembered as fatal: once the Identity Agent is up, the next request works.
    assert run(agent.get_ticket(ctx)) == TICKET
    assert fake.count("Initialize") == 2


def test_initialize_failing_is_agent_unavailable_whatever_code_it_gives(fake, make_agent):
    fake.script("Initialize code=1 lasterror=0x80100001")  # TCK_API_ERR_INTERNAL
    agent, ctx = make_agent(fake.library)
    err = error_of(agent.get_ticket_no_auth(ctx))
    assert err.code is ErrorCode.AGENT_UNAVAILABLE
    assert err.detail["agentCode"] == "0x80100001" and err.detail["agentError"] == "INTERNAL"


def test_initialize_failing_without_a_reason_is_still_agent_unavailable(fake, make_agent):
    fake.script("Initialize code=1 lasterror=0")
    agent, ctx = make_agent(fake.library)
    err = error_of(agent.get_ticket(ctx))
    assert err.code is ErrorCode.AGENT_UNAVAILABLE
    assert err.detail["call"] == "Initialize"
    assert "agentCode" not in err.detail  # no code is invented


def test_the_instance_handle_is_passed_as_a_c_long(fake, make_agent):
    fake.script(f"getTicket ticket={TICKET}")
    agent, ctx = make_agent(fake.library)
    run(agent.get_ticket(ctx))  # the fake refuses any other handle than the one it gave
    if ctypes.sizeof(ctypes.c_long) == 8:
        assert fake.handle() > 2**32  # so a 32-bit int binding would have failed


def test_initialize_once_and_finalize_once_at_close(fake, make_agent):
    fake.script(f"getTicket ticket={TICKET}", "getTicketNoAuth code=0x80100009",
                f"getTicketNoAuth ticket={TICKET}", f"getTicket ticket={TICKET}")
    agent, ctx = make_agent(fake.library)
    assert fake.count("Initialize") == 0  # lazily, on first use
    run(agent.get_ticket(ctx))
    run(agent.get_ticket_no_auth(ctx))
    run(agent.get_ticket_no_auth(ctx))
    run(agent.get_ticket(ctx))
    assert fake.count("Initialize") == 1
    assert fake.count("Finalize") == 0
    run(agent.close())
    finals = [line for line in fake.calls() if line.startswith("Finalize")]
    assert finals == [f"Finalize {fake.handle()}"]  # the handle Initialize gave
    run(agent.close())
    assert fake.count("Finalize") == 1
    err = error_of(agent.get_ticket(ctx))
    assert err.code is ErrorCode.AGENT_UNAVAILABLE
    assert fake.count("Initialize") == 1


def test_close_without_use_does_not_touch_the_library(fake, make_agent):
    agent, _ = make_agent(fake.library)
    run(agent.close())
    assert fake.calls() == []


def test_close_does_not_finalize_under_a_running_call(fake, make_agent):
    fake.script(f"getTicket ticket={TICKET} sleep=1500")

    async def scenario():
        agent, ctx = make_agent(fake.library)
        call = asyncio.ensure_future(agent.get_ticket(ctx))
        while fake.count("Initialize") == 0:
            await asyncio.sleep(0.01)
        await agent.close()
        still_running = not call.done()
        ticket = await call
        return still_running, ticket

    still_running, ticket = run(scenario())
    assert still_running  # close() returned without waiting for the Identity Agent
    assert ticket == TICKET
    assert fake.count("Finalize") == 0
    assert "OVERLAP" not in fake.calls()


# ------------------------------------------------------------ concurrency


def test_calls_into_the_dll_never_overlap(fake, make_agent):
    fake.script(*[f"getTicketNoAuth ticket={TICKET} sleep=50" for _ in range(6)],
                *[f"getTicket ticket={TICKET} sleep=50" for _ in range(6)])

    async def scenario():
        agent, ctx = make_agent(fake.library)
        # getTicketNoAuth first: queued behind a login it would answer null
        # (test_get_ticket_no_auth_during_a_login_answers_null_at_once)
        calls = [agent.get_ticket_no_auth(ctx) for _ in range(6)] + [agent.get_ticket(ctx) for _ in range(6)]
        return await asyncio.gather(*calls)

    assert run(scenario()) == [TICKET] * 12
    assert "OVERLAP" not in fake.calls()
    assert fake.count("Initialize") == 1


def test_requests_waiting_for_the_dll_do_not_hold_worker_threads(fake, make_agent):
    # An Identity Agent dialog left open must not use up the host's threads.
    fake.script(f"getTicket ticket={TICKET} sleep=300", *[f"getTicket ticket={TICKET}" for _ in range(5)])

    async def scenario():
        agent, ctx = make_agent(fake.library)
        calls = [agent.get_ticket(ctx) for _ in range(6)]
        return await asyncio.gather(*calls), ctx.max_in_flight

    results, max_in_flight = run(scenario())
    assert results == [TICKET] * 6
    assert max_in_flight == 1


def test_a_cancelled_request_keeps_its_turn_until_the_dll_returns(fake, make_agent):
    fake.script(f"getTicket ticket={TICKET} sleep=300", f"getTicket ticket={TICKET}")

    async def scenario():
        agent, ctx = make_agent(fake.library)
        first = asyncio.ensure_future(agent.get_ticket(ctx))
        while fake.count("Initialize") == 0:
            await asyncio.sleep(0.01)
        first.cancel()
        await asyncio.sleep(0)
        # The cancelled login's library call (its windows) is still running:
        # getTicketNoAuth says "no session yet" without waiting for it ...
        no_auth = await agent.get_ticket_no_auth(ctx)
        # ... and another login waits for the library to return.
        second = await agent.get_ticket(ctx)
        return first.cancelled(), no_auth, second

    cancelled, no_auth, second = run(scenario())
    assert cancelled and no_auth is None and second == TICKET
    assert "OVERLAP" not in fake.calls()
    assert fake.count("getTicketNoAuth") == 0


def test_get_ticket_no_auth_during_a_login_answers_null_at_once(fake, make_agent):
    fake.script(f"getTicket ticket={TICKET} sleep=100", f"getTicket ticket={TICKET} sleep=2000",
                f"getTicketNoAuth ticket={TICKET}", f"getTicketNoAuth ticket={TICKET}")

    async def scenario():
        agent, ctx = make_agent(fake.library)
        quick = asyncio.ensure_future(agent.get_ticket(ctx))  # returns within the wait
        await asyncio.sleep(0.02)
        during_quick = await agent.get_ticket_no_auth(ctx)
        await quick
        slow = asyncio.ensure_future(agent.get_ticket(ctx))
        await asyncio.sleep(0.02)
        during_slow = await agent.get_ticket_no_auth(ctx)
        slow_done = slow.done()
        await slow
        after = await agent.get_ticket_no_auth(ctx)
        return during_quick, during_slow, slow_done, after

    during_quick, during_slow, slow_done, after = run(scenario())
    assert during_quick == TICKET  # the login ended within the wait: the library was asked
    # Not waiting for the 2 s login (had it waited, the library would have answered the ticket):
    assert during_slow is None and not slow_done
    assert after == TICKET
    assert fake.count("getTicketNoAuth") == 2


# ------------------------------------------------------------ secrecy


def test_tickets_are_never_logged(fake, make_agent, caplog):
    fake.script(f"getTicket ticket={TICKET}", "getTicket ticketlen=3000")
    agent, ctx = make_agent(fake.library)
    with caplog.at_level(logging.DEBUG, logger="cisbridge"):
        run(agent.get_ticket(ctx))
        big = run(agent.get_ticket(ctx))
        run(agent.close())
    assert caplog.records  # the agent does log what it does...
    assert TICKET not in caplog.text and big[:40] not in caplog.text  # ...but not tickets


# ---------------------------------------------------------------- doctor


def test_probe_reports_the_versions_and_finalizes(fake):
    text = probe(str(fake.library))
    assert "0x00020001" in text and "0x00030007" in text
    assert str(fake.library) in text
    assert [c.split(" ->")[0] for c in fake.calls()] == [
        "Initialize", "GetGAVersion 1", "GetGAVersion 2", f"Finalize {fake.handle()}"]


def test_probe_of_a_missing_library_says_what_is_wrong(tmp_path):
    with pytest.raises(CisError) as info:
        probe(str(tmp_path / "TicketApiDll.dll"))
    assert info.value.code is ErrorCode.AGENT_UNAVAILABLE
    assert "TicketApiDll.dll" in info.value.message


def test_probe_when_initialize_fails(fake):
    fake.script("Initialize code=1 lasterror=0x80800002")
    with pytest.raises(CisError) as info:
        probe(str(fake.library))
    assert info.value.detail["agentCode"] == "0x80800002"
    assert fake.count("Finalize") == 0


def test_agent_is_created_from_the_config_kind(fake, make_agent):
    from cisbridge import agents

    _, host = make_agent(fake.library)
    agent = agents.create(host.config, host)
    assert isinstance(agent, TicketApiAgent) and agent.kind == "ticketapi"


# --------------------------------- the two exports the page API does not use


def test_get_new_ticket_and_destroy_ticket_are_bound_too(fake):
    fake.script(f"getNewTicket ticket={TICKET}", "destroyTicket code=0", "destroyTicket code=0x80800002")
    api = ticketapi.TicketApi(str(fake.library))
    try:
        assert api.get_new_ticket() == TICKET
        api.destroy_ticket()
        with pytest.raises(CisError) as info:
            api.destroy_ticket()
        assert info.value.code is ErrorCode.AGENT_UNAVAILABLE
        assert info.value.detail["agentCode"] == "0x80800002"
    finally:
        api.finalize(timeout=1)
    assert fake.count("Finalize") == 1
