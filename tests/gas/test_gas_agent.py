"""getTicket against the simulator exactly as a clinician's login goes."""

from __future__ import annotations

import time

import pytest
from gas_support import ONE_ROLE, PIN, gas_config, login

from cisbridge.spine import server

pytestmark = pytest.mark.softhsm


def test_first_login_with_one_role_then_silent_reuse(gas_host, sim):
    host = gas_host("one")
    assert host.call("getTicketNoAuth")["result"] == {"ticket": None}
    ticket = login(host)["result"]["ticket"]
    assert "@" in ticket and ticket.endswith("#")
    assert host.call("getTicketNoAuth")["result"] == {"ticket": ticket}
    assert host.call("getTicket", {})["result"] == {"ticket": ticket}  # no prompt the second time
    assert host.prompts == []
    status = host.call("getStatus")["result"]
    assert status["session"]["active"] is True and status["session"]["uid"] == ONE_ROLE
    assert ticket not in host.log_text()
    # the EHR back end checks the ticket it was given
    ca = str(sim.ca_file) if sim.ca_file else None
    assert server.validate_ticket(ticket, sim.url, ca_file=ca).uid == ONE_ROLE
    assertion = server.role_assertion(ticket, sim.url, ca_file=ca)
    assert assertion.uid == ONE_ROLE and assertion.role_profile_id == "555000000101"


def test_a_debug_log_never_holds_the_ticket_answered_on_either_path(gas_host):
    # (passcodes in debug logs: tests/test_logging.py, with a passcode no pid or port can contain)
    host = gas_host("one", extra='[logging]\nlevel = "debug"\n')
    assert host.call("getStatus")["result"]["session"] == {"active": False}  # settles the host
    ticket = login(host)["result"]["ticket"]
    for _ in range(3):  # the first through the event loop, the rest on the reader thread
        assert host.call("getTicketNoAuth")["result"] == {"ticket": ticket}
    host.stop()
    text = host.log_text()
    assert "getTicketNoAuth" in text and "ok at once" in text  # both paths were logged, at debug level
    assert ticket not in text and ticket.split("@")[0] not in text


def test_several_roles_prompt_for_a_choice_and_the_choice_is_asserted(gas_host, sim):
    host = gas_host("many")
    rid = host.send("getTicket", {})
    host.reply(host.prompt("pin", timeout=20), PIN)
    prompt = host.prompt("role", timeout=20)
    assert prompt["for"] == rid
    roles = prompt["data"]["roles"]
    assert [r["id"] for r in roles] == ["555000000201", "555000000202", "555000000203"]
    assert roles[1] == {
        "id": "555000000202",
        "org": "CISBRIDGE TEST SURGERY",
        "orgCode": "Y42",
        "name": '"Admin & Clerical":"Admin & Clerical":"Registration Authority Agent"',
    }
    assert host.reply(prompt, "999999999999")["error"]["code"] == "INVALID_REQUEST"  # not offered
    host.reply(prompt, "555000000202")
    ticket = host.response(rid, timeout=20)["result"]["ticket"]
    ca = str(sim.ca_file) if sim.ca_file else None
    assert server.role_assertion(ticket, sim.url, ca_file=ca).org_code == "Y42"


def test_wrong_passcode_then_right(gas_host):
    host = gas_host("one")
    rid = host.send("getTicket", {})
    first = host.prompt("pin", timeout=20)
    assert "retry" not in first["data"]
    host.reply(first, "0000")
    again = host.prompt("pin", timeout=20)
    assert again["data"]["retry"] is True  # the window says the last passcode was not accepted
    host.reply(again, PIN)
    assert "ticket" in host.response(rid, timeout=20)["result"]


@pytest.mark.parametrize("at", ["pin", "role"])
def test_cancel_at_each_prompt(gas_host, sim, at):
    host = gas_host("many")
    rid = host.send("getTicket", {})
    prompt = host.prompt("pin", timeout=20)
    if at == "role":
        host.reply(prompt, PIN)
        prompt = host.prompt("role", timeout=20)
    host.reply(prompt, cancel=True)
    assert host.response(rid, timeout=20)["error"]["code"] == "USER_CANCELLED"
    assert host.call("getTicketNoAuth")["result"] == {"ticket": None}
    if at == "role":  # the half-made session was logged out at GAS
        deadline = time.monotonic() + 5
        while not sim.events("logout") and time.monotonic() < deadline:
            time.sleep(0.05)
        assert sim.events("logout")


def test_user_with_no_roles_gets_authentication_failed(gas_host):
    host = gas_host("none")
    error = login(host)["error"]
    assert error["code"] == "AUTHENTICATION_FAILED"
    assert "role" in error["message"]


def test_card_from_an_untrusted_ca_is_refused_with_the_servers_words(gas_host):
    error = login(gas_host("stranger"))["error"]
    assert error["code"] == "AUTHENTICATION_FAILED"
    assert error["detail"]["serverCode"] == "CARD_NOT_TRUSTED"


def test_simulator_down(start_host, gas_cards, sim):
    config = gas_config(sim, "one")
    sim.stop()
    host = start_host(config, env={"SOFTHSM2_CONF": gas_cards.conf})
    start = time.monotonic()
    error = host.call("getTicket", {}, timeout=10)["error"]
    assert error["code"] == "AGENT_UNAVAILABLE"
    assert time.monotonic() - start < 1.0  # nobody at the keyboard, yet an answer at once
    assert host.prompts == []


def test_simulator_slow_gives_timeout_within_the_configured_bound(gas_host, sim):
    sim.set_fault("slow", delay=10)
    host = gas_host("one", timeout=1)
    error = host.call("getTicket", {}, timeout=10)["error"]
    assert error["code"] == "TIMEOUT"
    assert host.prompts == []


@pytest.mark.parametrize("fault", ["http500", "malformed"])
def test_server_faults_map_to_agent_unavailable(gas_host, sim, fault):
    sim.set_fault(fault)
    host = gas_host("one")
    error = host.call("getTicket", {}, timeout=10)["error"]
    assert error["code"] == "AGENT_UNAVAILABLE"


def test_idle_expiry_ends_the_session_with_an_event(start_host, gas_cards):
    from cisbridge.sim.server import Simulator

    with Simulator(ca=gas_cards.ca, idle_time=1.5, max_time=60) as sim:
        host = start_host(gas_config(sim), env={"SOFTHSM2_CONF": gas_cards.conf})
        ticket = login(host)["result"]["ticket"]
        assert ticket
        event = host.event("sessionEnded", timeout=5)
        assert event["data"] == {"reason": "idleTimeout", "uid": ONE_ROLE}
        assert host.call("getTicketNoAuth")["result"] == {"ticket": None}


def test_use_keeps_the_session_past_its_idle_time_then_it_ends_idle_after_the_last_use(start_host, gas_cards):
    # getTicketNoAuth is answered on the host's reader thread: it only notes the
    # use, and the idle timer, when it fires, sets itself again.
    from cisbridge.sim.server import Simulator

    with Simulator(ca=gas_cards.ca, idle_time=1.0, max_time=60) as sim:
        host = start_host(gas_config(sim), env={"SOFTHSM2_CONF": gas_cards.conf})
        ticket = login(host)["result"]["ticket"]
        until = time.monotonic() + 2.5  # well past the first idle end
        while time.monotonic() < until:
            assert host.call("getTicketNoAuth")["result"] == {"ticket": ticket}
            assert host.call("getStatus")["result"]["session"]["active"] is True
            time.sleep(0.2)
        last_use = time.monotonic()
        assert not [e for e in host.events if e["event"] == "sessionEnded"]
        event = host.event("sessionEnded", timeout=5)
        assert time.monotonic() - last_use >= 0.8  # not before the idle time after the last use
        assert event["data"] == {"reason": "idleTimeout", "uid": ONE_ROLE}
        assert host.call("getTicketNoAuth")["result"] == {"ticket": None}
        assert host.call("getStatus")["result"]["session"] == {"active": False}


def test_maximum_session_time_ends_the_session_even_when_in_use(start_host, gas_cards):
    from cisbridge.sim.server import Simulator

    with Simulator(ca=gas_cards.ca, idle_time=60, max_time=2) as sim:
        host = start_host(gas_config(sim), env={"SOFTHSM2_CONF": gas_cards.conf})
        login(host)
        deadline = time.monotonic() + 5
        while time.monotonic() < deadline and not any(e["event"] == "sessionEnded" for e in host.events):
            host.call("getTicketNoAuth")
            time.sleep(0.2)
        event = host.event("sessionEnded", timeout=3)
        assert event["data"]["reason"] == "maxTimeout"
        assert host.call("getTicketNoAuth")["result"] == {"ticket": None}


def test_host_exit_logs_out_at_gas(gas_host, sim):
    host = gas_host("one")
    login(host)
    host.stop()
    assert sim.events("logout")
