"""Fault injection (down, slow, HTTP 500, malformed, expired, untrusted) and junk:
the simulator misbehaves on request and never crashes on bad input."""

from __future__ import annotations

import http.client
import json
import socket
import time

import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from cisbridge.sim import Simulator
from cisbridge.spine import gpobject
from cisbridge.spine.server import (ExpiredTicket, SpineUnavailable, role_assertion,
                                    validate_ticket)

from simclient import ONE_ROLE, GasClient


def _ticket(gas: GasClient, make_card) -> str:
    ticket = gas.login(make_card(ONE_ROLE))["sso_ticket"]
    assert gas.select_role(ticket, "555000000101")[0] == 200
    return ticket


def test_down_hangs_up_without_answering(sim, gas, make_card):
    ticket = _ticket(gas, make_card)
    gas.admin("/_sim/fault", {"fault": "down"})
    with pytest.raises((http.client.RemoteDisconnected, ConnectionError)):
        gas.activate()
    with pytest.raises(SpineUnavailable, match="cannot reach"):
        validate_ticket(ticket, sim.url)
    gas.admin("/_sim/fault", {"fault": "none"})
    assert validate_ticket(ticket, sim.url).uid == ONE_ROLE


def test_slow_answers_late_and_clients_time_out(sim, gas, make_card):
    ticket = _ticket(gas, make_card)
    gas.admin("/_sim/fault", {"fault": "slow", "delay": 5})
    with pytest.raises(SpineUnavailable, match="did not answer within 0.3 s"):
        validate_ticket(ticket, sim.url, timeout=0.3)
    gas.admin("/_sim/fault", {"fault": "slow", "delay": 0.2})
    start = time.monotonic()
    assert validate_ticket(ticket, sim.url).uid == ONE_ROLE
    assert time.monotonic() - start >= 0.2  # it did wait: the fault is real, not skipped


def test_stopping_does_not_wait_for_slow_requests(ca, make_card):
    sim = Simulator(ca=ca).start()
    sim.set_fault("slow", delay=60)
    gas = GasClient(sim.url, timeout=30)
    import threading

    errors = []
    t = threading.Thread(target=lambda: errors.append(_try(gas.activate)))
    t.start()
    time.sleep(0.2)
    sim.stop()
    t.join(10)
    assert not t.is_alive() and errors and errors[0] is not None


def _try(fn):
    try:
        fn()
    except Exception as exc:  # noqa: BLE001 - the test wants whatever the client saw
        return exc
    return None


def test_http500(sim, gas, make_card):
    ticket = _ticket(gas, make_card)
    gas.admin("/_sim/fault", {"fault": "http500"})
    status, body, _ = gas.raw("POST", "/login/authactivate", gpobject.encode({"service": "ACTIVATION"}))
    assert status == 500
    with pytest.raises(SpineUnavailable, match="HTTP 500"):
        validate_ticket(ticket, sim.url)
    with pytest.raises(SpineUnavailable, match="HTTP 500"):
        role_assertion(ticket, sim.url)


def test_malformed_xml(sim, gas, make_card):
    ticket = _ticket(gas, make_card)
    gas.admin("/_sim/fault", {"fault": "malformed"})
    status, body, _ = gas.raw("POST", "/login/authactivate", gpobject.encode({"service": "ACTIVATION"}))
    assert status == 200
    with pytest.raises(gpobject.GpObjectError):
        gpobject.decode(body)
    with pytest.raises(SpineUnavailable, match="unreadable"):
        validate_ticket(ticket, sim.url)
    with pytest.raises(SpineUnavailable, match="not XML"):
        role_assertion(ticket, sim.url)


def test_expired_ends_live_sessions(sim, gas, make_card):
    ticket = _ticket(gas, make_card)
    gas.admin("/_sim/fault", {"fault": "expired"})
    with pytest.raises(ExpiredTicket):
        validate_ticket(ticket, sim.url)
    gas.admin("/_sim/fault", {"fault": "none"})
    with pytest.raises(ExpiredTicket):  # it stays ended once the fault is lifted
        role_assertion(ticket, sim.url)
    assert sim.events("expired")[0]["reason"] == "fault"


def test_untrusted_refuses_a_good_card(sim, gas, make_card):
    gas.admin("/_sim/fault", {"fault": "untrusted"})
    status, obj = gas.validate(make_card(ONE_ROLE), gas.activate())
    assert status == 403 and obj["error_code"] == "CARD_NOT_TRUSTED"


def test_fault_limited_to_a_path_and_a_number_of_requests(sim, gas, make_card):
    gas.admin("/_sim/fault", {"fault": "http500", "paths": ["/login/authvalidate"], "times": 1})
    act = gas.activate()  # not affected
    status, _, _ = gas.raw("POST", "/login/authvalidate", gpobject.encode({"service": "AUTHENTICATION"}))
    assert status == 500
    assert gas.admin("/_sim/fault")["fault"] == "none"
    assert gas.validate(make_card(ONE_ROLE), act)[0] == 200


def test_fault_from_the_constructor(ca):
    from cisbridge.sim import Fault

    with Simulator(ca=ca, fault=Fault("http500")) as sim:
        assert GasClient(sim.url).raw("GET", "/saml/RoleAssertion?token=x")[0] == 500


@pytest.mark.parametrize("body", [
    {"fault": "explode"}, {"fault": "slow", "delay": -1}, {"fault": "slow", "delay": "1"},
    {"fault": "down", "paths": "/login"}, {"fault": "down", "times": 0}, {"fault": "down", "x": 1},
    [], None,
])
def test_admin_refuses_bad_fault_requests(sim, gas, body):
    status, out, _ = gas.raw("POST", "/_sim/fault", json.dumps(body).encode())
    assert status == 400 and json.loads(out)["error"]
    assert gas.admin("/_sim/fault")["fault"] == "none"


def test_admin_reset_forgets_everything(sim, gas, make_card):
    ticket = _ticket(gas, make_card)
    gas.admin("/_sim/fault", {"fault": "untrusted"})
    assert gas.admin("/_sim/reset", {}) == {}
    assert gas.admin("/_sim/log")["events"] == []
    assert gas.admin("/_sim/fault")["fault"] == "none"
    assert gas.select_role(ticket, "555000000101")[0] == 401


# --- junk


@pytest.mark.parametrize("method, target, body, headers, status", [
    ("GET", "/nothing/here", None, {}, 404),
    ("GET", "/login/authactivate", None, {}, 405),
    ("DELETE", "/saml/RoleAssertion", None, {}, 405),
    ("POST", "/login/authactivate", None, {}, 400),  # empty body
    ("POST", "/login/authactivate", b"x", {"Content-Length": "10000000"}, 413),
    ("POST", "/login/authactivate", b"x", {"Content-Length": "-5"}, 400),
    ("POST", "/login/authactivate", b"x", {"Content-Length": "ten"}, 400),
    ("POST", "/login/authactivate", b"not xml", {}, 400),
    ("POST", "/login/authactivate", b"\xff\xfe\x00<", {}, 400),
    ("POST", "/login/authactivate", gpobject.encode({"service": "LOGOUT"}), {}, 400),
    ("POST", "/login/authactivate", gpobject.encode({"service": "ACTIVATION", "auth_method": "1"}), {}, 400),
    ("POST", "/login/authvalidate", gpobject.encode({"service": "AUTHENTICATION", "challenge": "!!",
                                                     "signature": "x", "uid": "1", "response": "x"}), {}, 400),
    ("POST", "/login/authlogout", gpobject.encode({"service": "LOGOUT"}), {}, 400),
    ("GET", "/saml/RoleSelectionGP.jsp", None, {}, 400),
    ("GET", "/saml/RoleSelectionGP.jsp?token=a&token=b&selectedRoleUid=1", None, {}, 400),
    ("GET", "/saml/RoleSelectionGP.jsp?" + "&".join(f"p{i}=1" for i in range(50)), None, {}, 400),
    ("GET", "/saml/RoleSelectionGP.jsp?token=AQIC5xx&selectedRoleUid=1&ssbMode=7", None, {}, 401),
    ("POST", "/amserver/sessionservice", b"<RequestSet/>", {}, 400),
    ("POST", "/amserver/sessionservice", b"<RequestSet svcid='session'><Request>&lt;x</Request></RequestSet>", {}, 400),
    ("POST", "/amserver/sessionservice", b"<RequestSet svcid='naming'/>", {}, 400),
    ("GET", "/_sim/nothing", None, {}, 404),
])
def test_junk_gets_a_4xx(gas, method, target, body, headers, status):
    got, out, _ = gas.raw(method, target, body, headers)
    assert got == status, out
    assert gas.activate()  # and the simulator goes on


def _raw_http(port: int, request: bytes) -> bytes:
    with socket.create_connection(("127.0.0.1", port), timeout=5) as s:
        s.sendall(request)
        return s.recv(4096)


def test_post_without_content_length(sim):
    answer = _raw_http(sim.port, b"POST /login/authactivate HTTP/1.1\r\nHost: x\r\n\r\n")
    assert answer.startswith(b"HTTP/1.1 411")


def test_chunked_body_is_refused(sim):
    answer = _raw_http(sim.port, b"POST /login/authactivate HTTP/1.1\r\nHost: x\r\n"
                                 b"Transfer-Encoding: chunked\r\n\r\n5\r\nhello\r\n0\r\n\r\n")
    assert answer.startswith(b"HTTP/1.1 411")


def test_an_unread_body_is_not_taken_for_the_next_request(sim):
    # 404 without reading the body: the body must not be parsed as a second request
    smuggled = b"GET /_sim/reset HTTP/1.1\r\nHost: x\r\n\r\n"
    answer = _raw_http(sim.port, b"POST /nothing HTTP/1.1\r\nHost: x\r\nContent-Length: "
                       + str(len(smuggled)).encode() + b"\r\n\r\n" + smuggled)
    assert answer.startswith(b"HTTP/1.1 404") and answer.count(b"HTTP/1.1") == 1
    assert b"Connection: close" in answer


def test_gas_errors_are_gpobjects(gas):
    status, out, _ = gas.raw("POST", "/login/authvalidate", b"<nonsense")
    assert status == 400
    obj = gpobject.decode(out)
    assert obj["error_code"] == "BAD_REQUEST" and "not a gpOBJECT" in obj["error_text"]


def test_unsupported_session_operation_is_an_exception(sim, gas):
    body = (b"<RequestSet vers='1.0' svcid='session' reqid='1'><Request><![CDATA["
            b"<SessionRequest vers='1.0' reqid='0'><DestroySession><SessionID>x</SessionID>"
            b"</DestroySession></SessionRequest>]]></Request></RequestSet>")
    status, out, _ = gas.raw("POST", "/amserver/sessionservice", body)
    assert status == 200 and b"Unsupported request." in out


def test_not_http_at_all(sim, gas):
    with socket.create_connection(("127.0.0.1", sim.port), timeout=5) as s:
        s.sendall(b"\x16\x03\x01\x02\x00" + bytes(range(256)) * 4 + b"\r\n\r\n")
        s.recv(4096)
    assert gas.activate()


def test_plain_http_to_the_tls_port(tls_sim):
    with socket.create_connection(("127.0.0.1", tls_sim.port), timeout=5) as s:
        s.sendall(b"GET /saml/RoleAssertion HTTP/1.1\r\nHost: x\r\n\r\n")
        try:
            s.recv(4096)
        except ConnectionError:
            pass
    assert GasClient(tls_sim.url, tls_sim.ca_file).activate()


def test_silent_client_does_not_block_others(sim, gas):
    with socket.create_connection(("127.0.0.1", sim.port), timeout=5):
        assert gas.activate()  # served while another connection says nothing


def test_admin_is_loopback_only_and_sim_needs_tls_beyond_loopback(ca):
    from cisbridge.sim import SimulatorError

    with pytest.raises(SimulatorError, match="loopback"):
        Simulator(ca=ca, host="0.0.0.0")


@pytest.fixture(scope="module")
def fuzz_sim(ca):
    with Simulator(ca=ca) as s:
        yield s


@settings(max_examples=60, deadline=None, suppress_health_check=[HealthCheck.function_scoped_fixture])
@given(path=st.sampled_from(["/login/authactivate", "/login/authvalidate", "/login/authlogout",
                             "/amserver/sessionservice"]),
       body=st.one_of(st.binary(max_size=400),
                      st.builds(lambda d: gpobject.encode(d),
                                st.dictionaries(st.sampled_from(
                                    ["service", "challenge", "signature", "uid", "response",
                                     "sso_ticket", "auth_method"]),
                                    st.text(st.characters(min_codepoint=32, max_codepoint=126),
                                            max_size=40)))))
def test_fuzzed_bodies_never_cause_a_server_error(fuzz_sim, path, body):
    status, _, _ = GasClient(fuzz_sim.url).raw("POST", path, body)
    assert 200 <= status < 500


@settings(max_examples=40, deadline=None, suppress_health_check=[HealthCheck.function_scoped_fixture])
@given(query=st.text(st.characters(min_codepoint=33, max_codepoint=126, blacklist_characters="#"),
                     max_size=120),
       path=st.sampled_from(["/saml/RoleSelectionGP.jsp", "/saml/RoleAssertion"]))
def test_fuzzed_queries_never_cause_a_server_error(fuzz_sim, path, query):
    status, _, _ = GasClient(fuzz_sim.url).raw("GET", f"{path}?{query}")
    assert 200 <= status < 500
