"""The whole card login against the simulator, done by the test itself over real
HTTP and HTTPS, endpoint by endpoint (SPINE.md §3–5)."""

from __future__ import annotations

import base64
import re

import pytest

from cisbridge.sim import ticket_ref
from cisbridge.spine import gpobject, saml
from cisbridge.spine.gpobject import Param

from simclient import MANY_ROLES, NO_ROLES, ONE_ROLE, TRAINEE, GasClient


def test_activate_answers_a_challenge_and_where_to_reply(any_sim, any_gas):
    obj = any_gas.activate()
    challenge = obj.param("challenge")
    assert challenge.attributes.get("encoding") == "base64"
    assert len(base64.b64decode(challenge.value)) >= 16
    assert obj.require("signature")
    assert obj["reply_url"] == f"{any_sim.url}/login/authvalidate"
    assert obj["error_url"].startswith(any_sim.url)
    assert obj.require("gas_version") and obj.require("latest_gac_version")
    assert any_gas.activate()["challenge"] != challenge.value


def test_login_with_one_role(any_sim, any_gas, make_card):
    obj = any_gas.login(make_card(ONE_ROLE))
    assert obj["cn"] == "ONEROLE Alice Dr"
    roles = obj.numbered("nhsjobrole")
    assert len(roles) == 1
    assert roles[0].attributes == {"id": "555000000101", "orgcode": "X09"}
    assert roles[0].value == ('CISBRIDGE TEST HOSPITAL NHS TRUST, '
                              '"Clinical":"Clinical Provision":"Health Professional Access Role"')
    ticket = obj["sso_ticket"]
    # OpenSSO shape, with every character that breaks an un-encoded URL
    assert re.fullmatch(r"AQIC5[A-Za-z0-9+/]+=@AAJTSQACMDE=#", ticket)
    assert all(c in ticket for c in "+/=@#")
    assert obj["sso_session_url"] == f"{any_sim.url}/amserver/sessionservice"
    assert obj["sso_logout_url"] == f"{any_sim.url}/login/authlogout"
    assert int(obj["sso_max_session_time"]) == 43200
    assert int(obj["sso_session_time"]) == 7200
    assert int(obj["sso_keep_alive"]) > 0
    assert obj.require("sso_domain")
    [login] = any_sim.events("login")
    assert login["uid"] == ONE_ROLE and login["ticket"] == ticket_ref(ticket)
    assert (login["cardType"], login["mobility"]) == ("p11", "0")
    [activate] = any_sim.events("activate")
    assert activate["userAgent"] == "Mozilla/4.0(compatible;IE;GACv8.0.0.0)"
    assert activate["deviceId"] == "cisbridge-test,ClientIP=127.0.0.1"
    assert activate["appUrl"] == "NHST" and len(activate["logSessionId"]) == 10
    assert ticket not in str(any_sim.events())  # the event log never holds a ticket


def test_login_with_many_roles_lists_each(gas, make_card):
    roles = gas.login(make_card(MANY_ROLES)).numbered("nhsjobrole")
    assert [(r.attributes["id"], r.attributes["orgcode"]) for r in roles] == [
        ("555000000201", "X09"), ("555000000202", "Y42"), ("555000000203", "Z77")]
    assert [p.name for p in roles] == ["nhsjobrole1", "nhsjobrole2", "nhsjobrole3"]
    second = gpobject.job_roles(gas.login(make_card(MANY_ROLES)))[1]
    assert (second.org_name, second.job_role) == (
        "CISBRIDGE TEST SURGERY", '"Admin & Clerical":"Admin & Clerical":"Registration Authority Agent"')


def test_login_of_a_user_without_roles_has_no_role_to_select(gas, make_card):
    obj = gas.login(make_card(NO_ROLES))
    assert obj["cn"] == "NOROLES Carol Ms" and obj.numbered("nhsjobrole") == []
    status, body = gas.select_role(obj["sso_ticket"], "555000000101")
    assert status == 403 and b"OK" not in body


def test_role_selection_then_assertion_carries_the_selected_role(any_gas, make_card):
    ticket = any_gas.login(make_card(MANY_ROLES))["sso_ticket"]
    status, body = any_gas.select_role(ticket, "555000000202")
    assert status == 200 and b"OK" in body
    [selected] = any_gas.admin("/_sim/log?event=roleSelected")["events"]
    assert (selected["role"], selected["ssbMode"], selected["fallbackStatus"], selected["gacVersion"]) == (
        "555000000202", 0, "0", "8.0.0.0")
    status, xml = any_gas.get("/saml/RoleAssertion", token=ticket)
    assert status == 200
    role = saml.parse_role_assertion(xml)
    assert role.uid == MANY_ROLES and role.name == "MANYROLES Bob Mr"
    assert role.role_profile_id == "555000000202" == role.session_role_uid
    assert role.org_code == "Y42" and role.org_name == "CISBRIDGE TEST SURGERY"
    assert role.job_role == '"Admin & Clerical":"Admin & Clerical":"Registration Authority Agent"'
    assert role.job_role_code == "S8001:G8001:R8008"
    assert role.business_functions == ("Manage Registration", "Perform Detailed Health Record Search")
    assert role.business_function_codes == ("B0088", "B0264")
    assert role.training_mode is False and role.ocs_pr_code is None
    assert role.assertion_version == "1.1"
    # SPINE.md §5: a window of about ±3 minutes
    assert 5 * 60 <= (role.not_on_or_after - role.not_before).total_seconds() <= 7 * 60


def test_role_assertion_document_is_saml_1_1_as_published(gas, make_card):
    ticket = gas.login(make_card(ONE_ROLE))["sso_ticket"]
    gas.select_role(ticket, "555000000101")
    _, xml = gas.get("/saml/RoleAssertion", token=ticket)
    text = xml.decode()
    assert 'xmlns:samlp="urn:oasis:names:tc:SAML:1.0:protocol"' in text
    assert '<samlp:StatusCode Value="samlp:Success"/>' in text
    assert "<saml:NameIdentifier>uid=555000000001,ou=People,o=nhs</saml:NameIdentifier>" in text
    assert "<saml:ConfirmationMethod>urn:com:sun:identity</saml:ConfirmationMethod>" in text
    names = re.findall(r'AttributeName="(\w+)" AttributeNamespace="http://www.syntegra.com"', text)
    assert names == ["ssbAssertionVersion", "cn", "uid", "nhsOcsPrCode", "ssbSessionRoleUid",
                     "ssbMode", "nhsIdCode", "o", "nhsBusinessFunctions",
                     "nhsBusinessFunctionsCodes", "nhsJobRole", "uniqueIdentifier",
                     "nhsJobRoleCode"]
    assert saml.parse_role_assertion(xml).ocs_pr_code == "C1234567"


def test_empty_attributes_are_omitted(gas, make_card):
    ticket = gas.login(make_card(MANY_ROLES))["sso_ticket"]
    gas.select_role(ticket, "555000000203")  # the pharmacy role has no business functions
    _, xml = gas.get("/saml/RoleAssertion", token=ticket)
    assert b"nhsBusinessFunctions" not in xml and b"nhsOcsPrCode" not in xml
    assert saml.parse_role_assertion(xml).business_function_codes == ()


def test_training_user_is_in_training_mode(gas, make_card):
    ticket = gas.login(make_card(TRAINEE))["sso_ticket"]
    assert gas.select_role(ticket, "555000000401")[0] == 200
    _, xml = gas.get("/saml/RoleAssertion", token=ticket)
    assert saml.parse_role_assertion(xml).training_mode is True


def test_role_assertion_before_selection_is_refused(gas, make_card):
    ticket = gas.login(make_card(ONE_ROLE))["sso_ticket"]
    _, xml = gas.get("/saml/RoleAssertion", token=ticket)
    with pytest.raises(saml.AssertionRefused, match="No role has been selected"):
        saml.parse_role_assertion(xml)


def test_selecting_someone_elses_role_is_refused(gas, make_card):
    ticket = gas.login(make_card(ONE_ROLE))["sso_ticket"]
    status, body = gas.select_role(ticket, "555000000201")
    assert status == 403 and b"OK" not in body


def test_an_unencoded_ticket_does_not_work(gas, make_card):
    ticket = gas.login(make_card(ONE_ROLE))["sso_ticket"]
    # "+" in a query means a space and "#" starts a fragment: a client that forgets
    # to encode fails every time, not now and then
    status, body = gas.raw("GET", f"/saml/RoleSelectionGP.jsp?selectedRoleUid=555000000101"
                                  f"&ssbMode=0&token={ticket}")[:2]
    assert status == 401 and b"OK" not in body
    status, _, _ = gas.raw("GET", f"/saml/RoleSelectionGP.jsp?token={ticket}"
                                  "&selectedRoleUid=555000000101&ssbMode=0")
    assert status == 400
    assert gas.select_role(ticket, "555000000101")[0] == 200


def test_logout_ends_the_session_and_is_recorded(any_sim, any_gas, make_card):
    ticket = any_gas.login(make_card(ONE_ROLE))["sso_ticket"]
    status, obj = any_gas.logout(ticket, ONE_ROLE)
    assert status == 200 and obj["status"] == "OK"
    assert any_gas.select_role(ticket, "555000000101")[0] == 401
    log = any_gas.admin("/_sim/log?event=logout")["events"]
    assert [(e["uid"], e["ticket"], e["known"]) for e in log] == [(ONE_ROLE, ticket_ref(ticket), True)]


def test_logout_of_an_unknown_ticket_is_harmless_and_recorded(sim, gas):
    status, obj = gas.logout("AQIC5notarealticket=@AAJTSQACMDE=#", ONE_ROLE)
    assert status == 200
    assert sim.events("logout")[0]["known"] is False


def test_logout_with_another_uid_is_refused(gas, make_card):
    ticket = gas.login(make_card(ONE_ROLE))["sso_ticket"]
    status, obj = gas.logout(ticket, MANY_ROLES)
    assert status == 403 and obj["error_code"] == "UID_MISMATCH"
    assert gas.select_role(ticket, "555000000101")[0] == 200


# --- refusals at authvalidate


def test_untrusted_card_is_refused(sim, gas, make_card, tmp_path):
    from cisbridge import testca

    stranger = make_card(ONE_ROLE, issuer=testca.load_or_create(tmp_path / "other-ca"))
    status, obj = gas.validate(stranger, gas.activate())
    assert status == 403 and obj["error_code"] == "CARD_NOT_TRUSTED"
    assert "not trusted" in obj["error_text"]
    assert sim.events("loginFailed")[0]["code"] == "CARD_NOT_TRUSTED"
    assert sim.events("login") == []


def test_uid_must_match_the_certificate(gas, make_card):
    status, obj = gas.validate(make_card(ONE_ROLE), gas.activate(), uid=MANY_ROLES)
    assert status == 403 and obj["error_code"] == "UID_MISMATCH"


def test_unknown_card_holder_is_refused(gas, make_card):
    status, obj = gas.validate(make_card("555999999999"), gas.activate())
    assert status == 403 and obj["error_code"] == "USER_UNKNOWN"
    assert "555999999999" in obj["error_text"]


def test_signature_over_another_challenge_is_refused(gas, make_card):
    card = make_card(ONE_ROLE)
    first, second = gas.activate(), gas.activate()
    wrong = card.sign_challenge(base64.b64decode(first["challenge"]))
    status, obj = gas.validate(card, second, response=wrong)
    assert status == 403 and obj["error_code"] == "SIGNATURE_INVALID"


def test_detached_signature_without_attributes_is_accepted(gas, make_card):
    card = make_card(ONE_ROLE)
    act = gas.activate()
    response = card.sign_challenge(base64.b64decode(act["challenge"]), detached=True,
                                   signed_attributes=False)
    status, obj = gas.validate(card, act, response=response)
    assert status == 200, obj


def test_a_challenge_answers_one_login_only(gas, make_card):
    card = make_card(ONE_ROLE)
    act = gas.activate()
    assert gas.validate(card, act)[0] == 200
    status, obj = gas.validate(card, act)
    assert status == 403 and obj["error_code"] == "CHALLENGE_UNKNOWN"


def test_the_server_signature_must_be_echoed(gas, make_card):
    card = make_card(ONE_ROLE)
    act = gas.activate()
    status, obj = gas.post_gp("/login/authvalidate", [
        Param("service", "AUTHENTICATION"), Param("challenge", act["challenge"]),
        Param("signature", "Zm9yZ2Vk"), Param("uid", card.uuid), Param("card_type", "p11"),
        Param("response", card.sign_challenge(base64.b64decode(act["challenge"])),
              {"encoding": "base64"}), Param("mobility", "0")])
    assert status == 403 and obj["error_code"] == "CHALLENGE_UNKNOWN"


def test_challenge_expires(ca, make_card):
    import time

    from cisbridge.sim import Simulator

    with Simulator(ca=ca, challenge_time=0.2) as sim:
        gas = GasClient(sim.url)
        act = gas.activate()
        time.sleep(0.4)
        status, obj = gas.validate(make_card(ONE_ROLE), act)
        assert status == 403 and obj["error_code"] == "CHALLENGE_EXPIRED"


@pytest.mark.parametrize("missing", ["challenge", "signature", "uid", "response"])
def test_authvalidate_names_a_missing_parameter(gas, make_card, missing):
    card = make_card(ONE_ROLE)
    act = gas.activate()
    params = {"service": "AUTHENTICATION", "challenge": act["challenge"],
              "signature": act["signature"], "uid": card.uuid, "card_type": "p11",
              "response": card.sign_challenge(base64.b64decode(act["challenge"])), "mobility": "0"}
    del params[missing]
    status, obj = gas.post_gp("/login/authvalidate", params)
    assert status == 400 and missing in obj["error_text"]


def test_other_users_sessions_are_independent(gas, make_card):
    a = gas.login(make_card(ONE_ROLE))["sso_ticket"]
    b = gas.login(make_card(MANY_ROLES))["sso_ticket"]
    assert a != b
    gas.logout(a, ONE_ROLE)
    assert gas.select_role(b, "555000000201")[0] == 200



def test_concurrent_logins_get_distinct_live_sessions(any_sim, any_gas, make_card):
    from concurrent.futures import ThreadPoolExecutor

    from cisbridge.spine.server import validate_ticket

    card = make_card(MANY_ROLES)

    def login_and_select(_):
        ticket = any_gas.login(card)["sso_ticket"]
        assert any_gas.select_role(ticket, "555000000202")[0] == 200
        return ticket

    with ThreadPoolExecutor(16) as pool:
        tickets = list(pool.map(login_and_select, range(32)))
    assert len(set(tickets)) == 32
    assert len(any_sim.events("login")) == 32
    for ticket in tickets[::8]:
        assert validate_ticket(ticket, any_sim.url, any_sim.ca_file).uid == MANY_ROLES
