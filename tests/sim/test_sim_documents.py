"""The SAML and session-service parsers on documents written by hand from
SPINE.md §4–5 (not by the simulator), and on junk."""

from __future__ import annotations

import datetime as dt

import pytest
from hypothesis import given
from hypothesis import strategies as st

from cisbridge.spine import saml, sessionservice

NOW = dt.datetime(2026, 11, 29, 10, 0, 0, tzinfo=dt.timezone.utc)

ROLE_ASSERTION = b"""<?xml version="1.0" encoding="UTF-8"?>
<samlp:Response xmlns:samlp="urn:oasis:names:tc:SAML:1.0:protocol"
    xmlns:saml="urn:oasis:names:tc:SAML:1.0:assertion" MajorVersion="1" MinorVersion="1"
    ResponseID="s2abc" IssueInstant="2026-11-29T10:00:00Z">
  <samlp:Status><samlp:StatusCode Value="samlp:Success"></samlp:StatusCode></samlp:Status>
  <saml:Assertion MajorVersion="1" MinorVersion="1" AssertionID="s2def" Issuer="https://ssb"
      IssueInstant="2026-11-29T10:00:00Z">
    <saml:Conditions NotBefore="2026-11-29T09:57:00Z" NotOnOrAfter="2026-11-29T10:03:00Z"/>
    <saml:AttributeStatement>
      <saml:Subject>
        <saml:NameIdentifier>uid=687227875014,ou=People,o=nhs</saml:NameIdentifier>
        <saml:SubjectConfirmation>
          <saml:ConfirmationMethod>urn:com:sun:identity</saml:ConfirmationMethod>
        </saml:SubjectConfirmation>
      </saml:Subject>
      <saml:Attribute AttributeName="ssbAssertionVersion" AttributeNamespace="http://www.syntegra.com">
        <saml:AttributeValue>1.1</saml:AttributeValue></saml:Attribute>
      <saml:Attribute AttributeName="cn" AttributeNamespace="http://www.syntegra.com">
        <saml:AttributeValue>SMITH John Dr</saml:AttributeValue></saml:Attribute>
      <saml:Attribute AttributeName="uid" AttributeNamespace="http://www.syntegra.com">
        <saml:AttributeValue>687227875014</saml:AttributeValue></saml:Attribute>
      <saml:Attribute AttributeName="ssbSessionRoleUid" AttributeNamespace="http://www.syntegra.com">
        <saml:AttributeValue>555254242106</saml:AttributeValue></saml:Attribute>
      <saml:Attribute AttributeName="ssbMode" AttributeNamespace="http://www.syntegra.com">
        <saml:AttributeValue>0</saml:AttributeValue></saml:Attribute>
      <saml:Attribute AttributeName="nhsIdCode" AttributeNamespace="http://www.syntegra.com">
        <saml:AttributeValue>X09</saml:AttributeValue></saml:Attribute>
      <saml:Attribute AttributeName="o" AttributeNamespace="http://www.syntegra.com">
        <saml:AttributeValue>TEST ORG</saml:AttributeValue></saml:Attribute>
      <saml:Attribute AttributeName="nhsBusinessFunctions" AttributeNamespace="http://www.syntegra.com">
        <saml:AttributeValue>Perform Detailed Health Record Search</saml:AttributeValue>
        <saml:AttributeValue>View Clinical Record</saml:AttributeValue></saml:Attribute>
      <saml:Attribute AttributeName="nhsBusinessFunctionsCodes" AttributeNamespace="http://www.syntegra.com">
        <saml:AttributeValue>B0264</saml:AttributeValue>
        <saml:AttributeValue>B0370</saml:AttributeValue></saml:Attribute>
      <saml:Attribute AttributeName="nhsJobRole" AttributeNamespace="http://www.syntegra.com">
        <saml:AttributeValue>"Clinical":"Clinical Provision":"Health Professional Access Role"</saml:AttributeValue></saml:Attribute>
      <saml:Attribute AttributeName="uniqueIdentifier" AttributeNamespace="http://www.syntegra.com">
        <saml:AttributeValue>555254242106</saml:AttributeValue></saml:Attribute>
      <saml:Attribute AttributeName="nhsJobRoleCode" AttributeNamespace="http://www.syntegra.com">
        <saml:AttributeValue>S8000:G8000:R8003</saml:AttributeValue></saml:Attribute>
    </saml:AttributeStatement>
  </saml:Assertion>
</samlp:Response>"""


def test_parses_a_role_assertion_of_the_published_shape():
    role = saml.parse_role_assertion(ROLE_ASSERTION, now=NOW)
    assert role.uid == "687227875014" and role.name == "SMITH John Dr"
    assert role.role_profile_id == role.session_role_uid == "555254242106"
    assert (role.org_code, role.org_name) == ("X09", "TEST ORG")
    assert role.job_role == '"Clinical":"Clinical Provision":"Health Professional Access Role"'
    assert role.job_role_code == "S8000:G8000:R8003"
    assert role.business_function_codes == ("B0264", "B0370")
    assert role.business_functions[1] == "View Clinical Record"
    assert role.training_mode is False and role.ocs_pr_code is None
    assert role.not_before == NOW - dt.timedelta(minutes=3)


@pytest.mark.parametrize("at, words", [
    (NOW + dt.timedelta(minutes=10), "expired"),
    (NOW - dt.timedelta(minutes=10), "not valid yet"),
])
def test_checks_the_conditions_window(at, words):
    with pytest.raises(saml.MalformedAssertion, match=words):
        saml.parse_role_assertion(ROLE_ASSERTION, now=at)
    assert saml.parse_role_assertion(ROLE_ASSERTION, now=at, check_conditions=False).uid


def test_subject_must_match_the_uid():
    doc = ROLE_ASSERTION.replace(b"uid=687227875014,ou=People", b"uid=111111111111,ou=People")
    with pytest.raises(saml.MalformedAssertion, match="subject"):
        saml.parse_role_assertion(doc, now=NOW)


def test_missing_required_attribute_is_named():
    doc = ROLE_ASSERTION.replace(b'AttributeName="nhsIdCode"', b'AttributeName="other"')
    with pytest.raises(saml.MalformedAssertion, match="nhsIdCode"):
        saml.parse_role_assertion(doc, now=NOW)


def test_refusal_carries_the_status_and_message():
    doc = (b'<samlp:Response xmlns:samlp="urn:oasis:names:tc:SAML:1.0:protocol"><samlp:Status>'
           b'<samlp:StatusCode Value="samlp:Requester"/><samlp:StatusMessage>Invalid session'
           b"</samlp:StatusMessage></samlp:Status></samlp:Response>")
    with pytest.raises(saml.AssertionRefused) as info:
        saml.parse_role_assertion(doc)
    assert (info.value.status, info.value.status_message) == ("samlp:Requester", "Invalid session")


TICKET = "AQIC5wM2LY4Sfcy73z2zeTRzPNXOdr5U6mC2NyUVxy0BffY=@AAJTSQACMDE=#"
SESSION_RESPONSE = f"""<?xml version="1.0" encoding="UTF-8" standalone="yes"?>
<ResponseSet vers="1.0" svcid="session" reqid="1"><Response><![CDATA[<SessionResponse vers="1.0" reqid="0">
<GetSession><Session sid="{TICKET}" stype="user" cid="uid=687227875014,ou=People,o=nhs" cdomain="o=nhs"
 maxtime="720" maxidle="120" maxcaching="3" timeidle="5" timeleft="43000" state="valid">
<Property name="SessionHandle" value="shandle:{TICKET}"></Property>
<Property name="UserId" value="687227875014"></Property>
</Session></GetSession></SessionResponse>]]></Response></ResponseSet>""".encode()


def test_parses_a_valid_get_session_response():
    info = sessionservice.parse_get_session_response(SESSION_RESPONSE, TICKET)
    assert info.valid and info.properties["UserId"] == "687227875014"
    assert info.session["timeleft"] == "43000"


def test_session_handle_of_another_ticket_is_not_valid():
    other = "AQIC5wM2LY4Sfcy73z2zeTRzPNXOdr5U6mC2NyUVxy0BffZ=@AAJTSQACMDE=#"
    assert not sessionservice.parse_get_session_response(SESSION_RESPONSE, other).valid


def test_exception_response_is_not_valid():
    doc = (b'<ResponseSet vers="1.0" svcid="session" reqid="1"><Response><![CDATA['
           b"<SessionResponse><GetSession><Exception>Invalid session ID.</Exception></GetSession>"
           b"</SessionResponse>]]></Response></ResponseSet>")
    info = sessionservice.parse_get_session_response(doc, TICKET)
    assert not info.valid and info.exception == "Invalid session ID."


@given(st.binary(max_size=400))
def test_parsers_raise_only_their_own_errors(data):
    for parse, errors in ((lambda d: saml.parse_role_assertion(d), saml.RoleAssertionError),
                          (lambda d: sessionservice.parse_get_session_response(d, TICKET),
                           sessionservice.SessionServiceError),
                          (sessionservice.parse_request, sessionservice.SessionServiceError)):
        try:
            parse(data)
        except errors:
            pass


@given(st.text(st.characters(blacklist_categories=("Cs",)), max_size=200))
def test_request_parser_on_structured_junk(inner):
    doc = f"<RequestSet svcid='session'><Request><![CDATA[{inner}]]></Request></RequestSet>"
    try:
        sessionservice.parse_request(doc.encode())
    except sessionservice.SessionServiceError:
        pass
