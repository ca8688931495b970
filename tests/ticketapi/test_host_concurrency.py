"""The service under load and cancellation, with requests held in flight by a
real blocking call: the Ticket API library sleeping inside getTicket."""

from __future__ import annotations

import time

import pytest

TICKET = "AQIC5wM2LY4Sfcy73z2zeTRzPNXOdr5U6mC2NyUVxy0BffY=@AAJTSQACMDE=#"
OTHER = "https://other.example.nhs.uk"


def config_for(library, extra: str = "") -> str:
    return (
        f'allowed_origins = ["https://ehr.example.nhs.uk", "{OTHER}"]\n'
        f'[agent]\nkind = "ticketapi"\nlibrary = {str(library)!r}\n' + extra
    )


@pytest.fixture
def slow_host(fake, start_host):
    def start(*script: str, extra: str = ""):
        fake.script(*script)
        return start_host(config_for(fake.library, extra))

    return start


def test_a_blocking_agent_call_does_not_hold_back_other_requests(slow_host):
    host = slow_host(f"getTicket ticket={TICKET} sleep=1500")
    slow = host.send("getTicket")
    for _ in range(200):
        assert "result" in host.call("getStatus")
    assert slow not in host.responses  # still waiting on the library
    assert host.response(slow, timeout=10)["result"] == {"ticket": TICKET}


def test_cancel_ends_a_pending_request_with_user_cancelled(slow_host):
    host = slow_host(f"getTicket ticket={TICKET} sleep=3000")
    slow = host.send("getTicket")
    time.sleep(0.2)
    assert host.call("cancel", {"request": slow}) == {"id": 2, "result": {}}
    error = host.response(slow, timeout=1)["error"]
    assert error["code"] == "USER_CANCELLED"
    assert "result" in host.call("getStatus")


def test_another_origin_cannot_cancel_a_request(slow_host):
    host = slow_host(f"getTicket ticket={TICKET} sleep=800")
    slow = host.send("getTicket")
    assert "result" in host.call("cancel", {"request": slow}, origin=OTHER)
    assert host.response(slow, timeout=10)["result"] == {"ticket": TICKET}


def test_cancelling_an_unknown_or_finished_request_is_harmless(slow_host):
    host = slow_host()
    assert host.call("cancel", {"request": 999}) == {"id": 1, "result": {}}


def test_an_id_already_in_flight_is_refused(slow_host):
    host = slow_host(f"getTicket ticket={TICKET} sleep=1000")
    host.send("getTicket", request_id="dup")
    host.send("getStatus", request_id="dup")
    error = host.response("dup")["error"]
    assert error["code"] == "INVALID_REQUEST" and "already in use" in error["message"]
    assert host.response("dup", timeout=10)["result"] == {"ticket": TICKET}


def test_an_id_in_flight_is_refused_also_when_the_reader_thread_answers(slow_host):
    host = slow_host(f"getTicket ticket={TICKET} sleep=1000")
    assert "result" in host.call("getStatus")  # settled: getStatus is answered off the loop now
    host.send("getTicket", request_id="dup")
    time.sleep(0.2)
    for method in ("getStatus", "getTicketNoAuth"):
        host.send(method, request_id="dup")
        error = host.response("dup")["error"]
        assert error["code"] == "INVALID_REQUEST" and "already in use" in error["message"]
    assert host.response("dup", timeout=10)["result"] == {"ticket": TICKET}


def test_beyond_max_outstanding_requests_get_busy_but_cancel_still_works(slow_host):
    host = slow_host(*[f"getTicket ticket={TICKET} sleep=400"] * 4, extra="[host]\nmax_outstanding = 4\n")
    held = [host.send("getTicket") for _ in range(4)]
    error = host.call("getTicket")["error"]
    assert error["code"] == "BUSY"
    assert "result" in host.call("cancel", {"request": held[-1]})
    assert host.response(held[-1], timeout=5)["error"]["code"] == "USER_CANCELLED"
    for request in held[:-1]:
        assert host.response(request, timeout=10)["result"] == {"ticket": TICKET}
    assert "result" in host.call("getStatus")  # room again


def test_200_requests_in_flight_are_each_answered_exactly_once(slow_host):
    # the fake takes at most 64 scripted answers: 50 requests wait on the library
    host = slow_host(*["getTicketNoAuth code=0x80100009 sleep=5"] * 50, extra="[host]\nmax_outstanding = 256\n")
    sent = []
    for i in range(200):
        sent.append(host.send("getTicketNoAuth" if i % 4 == 0 else "getStatus"))
    answers = [host.next_frame(timeout=10) for _ in range(200)]
    assert sorted(a["id"] for a in answers) == sorted(sent)
    assert all("result" in a for a in answers)
    with pytest.raises(TimeoutError):
        host.next_frame(timeout=0.3)  # and nothing more


def test_eof_with_a_request_stuck_in_the_library_still_exits_within_a_second(slow_host):
    host = slow_host(f"getTicket ticket={TICKET} sleep=10000")
    host.send("getTicket")
    time.sleep(0.2)
    start = time.monotonic()
    host.close_stdin()
    assert host.wait_exit(timeout=5) == 0
    assert time.monotonic() - start < 1.0


def test_get_ticket_no_auth_does_not_wait_for_a_login_in_progress(slow_host):
    # The Identity Agent's login windows are open (getTicket sleeping in the
    # library): a page polling getTicketNoAuth hears "no session yet" at once
    # instead of waiting as long as the person does.
    host = slow_host(f"getTicket ticket={TICKET} sleep=3000", f"getTicketNoAuth ticket={TICKET}")
    login = host.send("getTicket")
    time.sleep(0.3)  # the library call has started
    assert host.call("getTicketNoAuth", timeout=2)["result"] == {"ticket": None}
    assert login not in host.responses  # answered while the login was still open
    assert host.response(login, timeout=10)["result"] == {"ticket": TICKET}
    # the login is over: getTicketNoAuth asks the library again
    assert host.call("getTicketNoAuth")["result"] == {"ticket": TICKET}
