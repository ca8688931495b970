"""Server-side checks of a ticket (cisbridge.spine.server) against the simulator:
GetSession, RoleAssertion, idle and maximum expiry."""

from __future__ import annotations

import time

import pytest

from cisbridge import testca
from cisbridge.sim import Simulator
from cisbridge.spine import sessionservice
from cisbridge.spine.server import (ExpiredTicket, InvalidTicket, SpineUnavailable,
                                    role_assertion, validate_ticket)

from simclient import MANY_ROLES, ONE_ROLE, GasClient


def _logged_in(gas: GasClient, card, role: str | None = None) -> str:
    ticket = gas.login(card)["sso_ticket"]
    if role:
        assert gas.select_role(ticket, role)[0] == 200
    return ticket


def test_validate_ticket_of_a_live_session(any_sim, any_gas, make_card):
    ticket = _logged_in(any_gas, make_card(ONE_ROLE))
    session = validate_ticket(ticket, any_sim.url, ca_file=any_sim.ca_file)
    assert session.uid == ONE_ROLE
    assert session.properties["SessionHandle"] == f"shandle:{ticket}"
    assert 43000 < session.time_left <= 43200
    assert session.idle_time is not None and session.idle_time < 5
    assert any_sim.events("getSession")[0]["uid"] == ONE_ROLE


def test_role_assertion_of_a_live_session(any_sim, any_gas, make_card):
    ticket = _logged_in(any_gas, make_card(MANY_ROLES), "555000000201")
    role = role_assertion(ticket, any_sim.url, ca_file=any_sim.ca_file)
    assert (role.uid, role.role_profile_id, role.org_code, role.job_role_code) == (
        MANY_ROLES, "555000000201", "X09", "S8000:G8000:R8001")
    assert role.business_function_codes == ("B0370",)
    assert role.training_mode is False


def test_a_made_up_ticket_is_invalid(sim):
    with pytest.raises(InvalidTicket, match="Invalid session ID") as info:
        validate_ticket("AQIC5wM2LY4Sfcy73z2zeTRzPNXOdr5U6mC2NyUVxy0BffY=@AAJTSQACMDE=#", sim.url)
    assert not isinstance(info.value, ExpiredTicket)
    with pytest.raises(InvalidTicket):
        role_assertion("AQIC5wM2LY4Sfcy73z2zeTRzPNXOdr5U6mC2NyUVxy0BffY=@AAJTSQACMDE=#", sim.url)


@pytest.mark.parametrize("junk", ["", "short", "has space in it", "x" * 5000, "a<b>c&d]]>e12"])
def test_something_that_is_not_a_ticket_is_invalid_before_any_request(sim, junk):
    with pytest.raises(InvalidTicket):
        validate_ticket(junk, sim.url)
    with pytest.raises(InvalidTicket):
        role_assertion(junk, sim.url)
    assert sim.events() == []


def test_role_assertion_without_a_selected_role(sim, gas, make_card):
    ticket = _logged_in(gas, make_card(ONE_ROLE))
    with pytest.raises(InvalidTicket, match="no role selected"):
        role_assertion(ticket, sim.url)


def test_logged_out_ticket_is_invalid(sim, gas, make_card):
    ticket = _logged_in(gas, make_card(ONE_ROLE), "555000000101")
    gas.logout(ticket, ONE_ROLE)
    with pytest.raises(InvalidTicket):
        validate_ticket(ticket, sim.url)


def test_idle_session_expires(ca, make_card):
    with Simulator(ca=ca, idle_time=1.0, max_time=60) as sim:
        gas = GasClient(sim.url)
        ticket = _logged_in(gas, make_card(ONE_ROLE), "555000000101")
        for _ in range(3):  # activity keeps it alive past the idle time
            time.sleep(0.4)
            assert validate_ticket(ticket, sim.url).uid == ONE_ROLE
        time.sleep(1.2)
        with pytest.raises(ExpiredTicket, match="log in again"):
            validate_ticket(ticket, sim.url)
        with pytest.raises(ExpiredTicket):  # and it stays ended
            role_assertion(ticket, sim.url)
        assert [e["reason"] for e in sim.events("expired")] == ["idle"]


def test_check_without_reset_does_not_keep_the_session_alive(ca, make_card):
    with Simulator(ca=ca, idle_time=1.0, max_time=60) as sim:
        gas = GasClient(sim.url)
        ticket = _logged_in(gas, make_card(ONE_ROLE))
        time.sleep(0.5)
        validate_ticket(ticket, sim.url, reset=False)
        time.sleep(0.6)
        with pytest.raises(ExpiredTicket):
            validate_ticket(ticket, sim.url)


def test_maximum_session_time_ends_even_a_busy_session(ca, make_card):
    with Simulator(ca=ca, idle_time=60, max_time=1.0) as sim:
        gas = GasClient(sim.url)
        ticket = _logged_in(gas, make_card(ONE_ROLE), "555000000101")
        assert int(gas.login(make_card(ONE_ROLE))["sso_max_session_time"]) == 1
        deadline = time.monotonic() + 5
        with pytest.raises(ExpiredTicket):
            while time.monotonic() < deadline:
                role_assertion(ticket, sim.url)
                time.sleep(0.1)
        assert [e["reason"] for e in sim.events("expired")] == ["max"]


def test_role_selection_on_an_expired_session_fails(ca, make_card):
    with Simulator(ca=ca, idle_time=0.3) as sim:
        gas = GasClient(sim.url)
        ticket = _logged_in(gas, make_card(ONE_ROLE))
        time.sleep(0.5)
        status, body = gas.select_role(ticket, "555000000101")
        assert status == 401 and b"timed out" in body and b"OK" not in body


def test_tls_is_verified_against_the_ca_file(tls_sim, make_card, tmp_path):
    gas = GasClient(tls_sim.url, tls_sim.ca_file)
    ticket = _logged_in(gas, make_card(ONE_ROLE))
    other = testca.load_or_create(tmp_path / "other")
    with pytest.raises(SpineUnavailable, match="not trusted"):
        validate_ticket(ticket, tls_sim.url, ca_file=other.cert_path)
    with pytest.raises(SpineUnavailable, match="not trusted"):
        validate_ticket(ticket, tls_sim.url)  # the system store does not hold the test CA
    assert validate_ticket(ticket, tls_sim.url, ca_file=tls_sim.ca_file).uid == ONE_ROLE


def test_tls_host_name_is_checked(tls_sim, make_card):
    gas = GasClient(tls_sim.url, tls_sim.ca_file)
    ticket = _logged_in(gas, make_card(ONE_ROLE))
    url = tls_sim.url.replace("127.0.0.1", "127.0.0.2")  # loopback, but not in the certificate
    with pytest.raises(SpineUnavailable, match="not trusted|cannot reach"):
        validate_ticket(ticket, url, ca_file=tls_sim.ca_file)


def test_plain_http_is_refused_beyond_loopback():
    with pytest.raises(ValueError, match="https"):
        validate_ticket("AQIC5wM2LY4Sfcy73z2zeTRz=@AAJTSQACMDE=#", "http://ssb.example.org")
    with pytest.raises(ValueError, match="https"):
        role_assertion("AQIC5wM2LY4Sfcy73z2zeTRz=@AAJTSQACMDE=#", "ftp://127.0.0.1")


def test_nobody_listening_is_unavailable():
    import socket

    s = socket.socket()
    s.bind(("127.0.0.1", 0))
    port = s.getsockname()[1]
    s.close()
    with pytest.raises(SpineUnavailable, match="cannot reach"):
        validate_ticket("AQIC5wM2LY4Sfcy73z2zeTRz=@AAJTSQACMDE=#", f"http://127.0.0.1:{port}")


def test_session_request_document_shape():
    # SPINE.md §4: a RequestSet whose CDATA holds GetSession reset="true"
    doc = sessionservice.get_session_request("AQIC5a+b/c=@AAJTSQACMDE=#").decode()
    assert '<RequestSet vers="1.0" svcid="session"' in doc
    assert ('<![CDATA[<SessionRequest vers="1.0" reqid="1"><GetSession reset="true">'
            "<SessionID>AQIC5a+b/c=@AAJTSQACMDE=#</SessionID></GetSession></SessionRequest>]]>") in doc


def test_serves_on_ipv6_loopback(ca, make_card):
    import socket

    if not socket.has_ipv6:
        pytest.skip("no IPv6 on this machine")
    try:
        sim = Simulator(ca=ca, host="::1", tls=True).start()
    except Exception as exc:  # noqa: BLE001
        pytest.skip(f"cannot listen on ::1 here: {exc}")
    with sim:
        assert sim.url.startswith("https://[::1]:")
        gas = GasClient(sim.url, sim.ca_file)
        ticket = _logged_in(gas, make_card(ONE_ROLE))
        assert validate_ticket(ticket, sim.url, ca_file=sim.ca_file).uid == ONE_ROLE


def test_abandoned_sessions_are_forgotten(ca, make_card):
    with Simulator(ca=ca, idle_time=0.3) as sim:
        user = sim.state.users[ONE_ROLE]
        for _ in range(1000):
            sim.state.open_session(user, "", "")
        time.sleep(0.4)
        ticket = _logged_in(GasClient(sim.url), make_card(ONE_ROLE))
        assert list(sim.state.sessions) == [ticket]
