"""The Ticket API agent through the real host process, as the browser sees it."""

from __future__ import annotations

import pytest

TICKET = "AQIC5wM2LY4Sfcy73z2zeTRzPNXOdr5U6mC2NyUVxy0BffY=@AAJTSQACMDE=#"


def config_for(library, level: str = "info") -> str:
    return (
        'allowed_origins = ["https://ehr.example.nhs.uk"]\n'
        "[agent]\n"
        'kind = "ticketapi"\n'
        f"library = {str(library)!r}\n"
        "[logging]\n"
        f'level = "{level}"\n'
    )


@pytest.fixture
def ticket_host(fake, start_host):
    def start(*script: str, level: str = "info"):
        fake.script(*script)
        return start_host(config_for(fake.library, level))

    return start


def test_ready_names_the_ticketapi_agent(fake, ticket_host):
    host = ticket_host()
    assert host.ready["data"]["agent"] == "ticketapi"
    status = host.call("getStatus")["result"]
    assert status["agent"] == "ticketapi"
    # Nothing asked of the Identity Agent until a page asks for a ticket.
    assert fake.calls() == []


def test_get_ticket_and_get_ticket_no_auth_through_the_host(fake, ticket_host):
    host = ticket_host("getTicketNoAuth code=0x80100009", f"getTicket ticket={TICKET}",
                       f"getTicketNoAuth ticket={TICKET}")
    assert host.call("getTicketNoAuth") == {"id": 1, "result": {"ticket": None}}
    assert host.call("getTicket", {}) == {"id": 2, "result": {"ticket": TICKET}}
    assert host.call("getTicketNoAuth") == {"id": 3, "result": {"ticket": TICKET}}


def test_a_3_kb_ticket_through_the_host(fake, ticket_host):
    host = ticket_host("getTicket ticketlen=3072")
    ticket = host.call("getTicket")["result"]["ticket"]
    assert len(ticket) == 3072
    assert fake.sizes("getTicket") == [512, 3074]


def test_a_ticket_api_error_keeps_the_raw_code_in_detail(fake, ticket_host):
    host = ticket_host("getTicket code=0x80400001", "getTicket code=0x80200004")
    error = host.call("getTicket")["error"]
    assert error["code"] == "USER_CANCELLED"
    assert error["detail"]["agentCode"] == "0x80400001"
    assert error["detail"]["agentError"] == "USER_ABORT"
    error = host.call("getTicket")["error"]
    assert error["code"] == "PIN_LOCKED"
    assert error["detail"]["agentCode"] == "0x80200004"
    assert "Registration Authority" in error["message"]


def test_a_missing_library_is_agent_unavailable_and_the_host_carries_on(tmp_path, start_host):
    missing = tmp_path / "absent" / "TicketApiDll.so"
    host = start_host(config_for(missing))
    error = host.call("getTicket")["error"]
    assert error["code"] == "AGENT_UNAVAILABLE"
    assert str(missing) in error["message"] and "[agent] library" in error["message"]
    assert host.call("getStatus")["result"]["agent"] == "ticketapi"


def test_initialize_once_and_finalize_when_the_browser_disconnects(fake, ticket_host):
    host = ticket_host(f"getTicket ticket={TICKET}", f"getTicketNoAuth ticket={TICKET}",
                       f"getTicket ticket={TICKET}")
    for method in ("getTicket", "getTicketNoAuth", "getTicket"):
        assert host.call(method)["result"]["ticket"] == TICKET
    host.close_stdin()
    assert host.wait_exit() == 0
    assert fake.count("Initialize") == 1
    assert [line for line in fake.calls() if line.startswith("Finalize")] == [f"Finalize {fake.handle()}"]


def test_a_refused_origin_never_reaches_the_identity_agent(fake, ticket_host):
    host = ticket_host(f"getTicket ticket={TICKET}")
    error = host.call("getTicket", origin="https://evil.example.com")["error"]
    assert error["code"] == "ORIGIN_NOT_ALLOWED"
    assert fake.calls() == []


def test_tickets_are_not_in_the_host_log(fake, ticket_host):
    host = ticket_host(f"getTicket ticket={TICKET}", "getTicket code=0x80400002", level="debug")
    assert host.call("getTicket")["result"]["ticket"] == TICKET
    assert host.call("getTicket")["error"]["code"] == "AUTHENTICATION_FAILED"
    host.stop()
    log = host.log_text()
    assert "getTicket" in log  # the log is there and at debug level...
    assert TICKET not in log and "AQIC5wM2" not in log  # ...without the ticket
