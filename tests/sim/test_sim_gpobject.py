"""The gpOBJECT codec: faithful shape, exact round trips, and hostile input refused."""

from __future__ import annotations

import pytest
from hypothesis import given
from hypothesis import strategies as st

from cisbridge.spine import gpobject
from cisbridge.spine.gpobject import GpObjectError, Param

# The shape SPINE.md §3 describes, written out by hand (not by the encoder).
AUTHVALIDATE_RESPONSE = b"""<?xml version="1.0" encoding="UTF-8"?>
<!DOCTYPE USER SYSTEM "gpOBJECT.DTD">
<gpOBJECT>
  <gpPARAM name="cn">ONEROLE Alice Dr</gpPARAM>
  <gpPARAM name="nhsjobrole2" id="555000000202" orgcode="Y42">CISBRIDGE TEST SURGERY, "Admin &amp; Clerical":"Admin &amp; Clerical":"Registration Authority Agent"</gpPARAM>
  <gpPARAM name="nhsjobrole1" id="555000000201" orgcode="X09">CISBRIDGE TEST HOSPITAL NHS TRUST, "Clinical":"Clinical Provision":"Nurse Access Role"</gpPARAM>
  <gpPARAM name="sso_ticket">AQIC5wM2LY4Sfcy73z2zeTRzPNXOdr5U6mC2NyUVxy0BffY=@AAJTSQACMDE=#</gpPARAM>
  <gpPARAM name="response" encoding="base64">aGVs
bG8=</gpPARAM>
  <gpPARAM name="empty"/>
</gpOBJECT>
"""


def test_decodes_the_published_shape():
    obj = gpobject.decode(AUTHVALIDATE_RESPONSE)
    assert obj["cn"] == "ONEROLE Alice Dr"
    assert obj["sso_ticket"] == "AQIC5wM2LY4Sfcy73z2zeTRzPNXOdr5U6mC2NyUVxy0BffY=@AAJTSQACMDE=#"
    roles = obj.numbered("nhsjobrole")
    assert [r.attributes["id"] for r in roles] == ["555000000201", "555000000202"]
    assert roles[1].attributes["orgcode"] == "Y42"
    assert roles[1].value.endswith('"Admin & Clerical":"Admin & Clerical":"Registration Authority Agent"')
    assert obj.param("response").binary() == b"hello"  # base64 may be wrapped
    assert obj.get("empty") == ""
    assert obj.get("missing") is None and "missing" not in obj
    with pytest.raises(KeyError):
        obj["missing"]


def test_encodes_with_the_gpobject_doctype_and_escapes():
    data = gpobject.encode([Param("service", "ACTIVATION"),
                            Param("device_id", 'pc<1>&"x",ClientIP=10.0.0.1'),
                            Param.base64("response", b"\x00\xff"),
                            Param("nhsjobrole1", "ORG", {"id": "1", "orgcode": "A&B"})])
    text = data.decode("utf-8")
    assert text.splitlines()[1] == '<!DOCTYPE USER SYSTEM "gpOBJECT.DTD">'
    assert '<gpPARAM name="service">ACTIVATION</gpPARAM>' in text
    assert '<gpPARAM name="response" encoding="base64">AP8=</gpPARAM>' in text
    assert "pc&lt;1&gt;&amp;" in text
    back = gpobject.decode(data)
    assert back["device_id"] == 'pc<1>&"x",ClientIP=10.0.0.1'
    assert back.param("response").binary() == b"\x00\xff"
    assert back.param("nhsjobrole1").attributes == {"id": "1", "orgcode": "A&B"}


def test_encodes_a_mapping_in_order():
    back = gpobject.decode(gpobject.encode({"b": "2", "a": "1"}))
    assert [p.name for p in back] == ["b", "a"]


_xml_text = st.text(st.characters(blacklist_categories=("Cs",),
                                  blacklist_characters="\x00\x01\x02\x03\x04\x05\x06\x07\x08\x0b"
                                  "\x0c\x0e\x0f\x10\x11\x12\x13\x14\x15\x16\x17\x18\x19\x1a\x1b"
                                  "\x1c\x1d\x1e\x1f\ufffe\uffff"), max_size=200)


@given(st.lists(st.tuples(st.from_regex(r"[a-z_][a-z0-9_]{0,20}", fullmatch=True), _xml_text),
                max_size=8))
def test_round_trips_any_text(pairs):
    back = gpobject.decode(gpobject.encode(pairs))
    assert [(p.name, p.value) for p in back] == pairs


@given(st.binary(max_size=300))
def test_round_trips_any_bytes_as_base64(data):
    assert gpobject.decode(gpobject.encode([Param.base64("x", data)])).param("x").binary() == data


@pytest.mark.parametrize("value", ["a\x00b", "bell\x07"])
def test_refuses_to_encode_what_xml_cannot_carry(value):
    with pytest.raises(GpObjectError):
        gpobject.encode([Param("x", value)])


@pytest.mark.parametrize("name", ["", "1abc", "a b", 'a"b', "x" * 200])
def test_refuses_bad_names(name):
    with pytest.raises(GpObjectError):
        gpobject.encode([Param(name, "v")])


def test_refuses_a_name_attribute_twice():
    with pytest.raises(GpObjectError):
        gpobject.encode([Param("a", "v", {"name": "b"})])


BILLION_LAUGHS = b"""<?xml version="1.0"?>
<!DOCTYPE gpOBJECT [<!ENTITY a "aaaaaaaaaa"><!ENTITY b "&a;&a;&a;&a;&a;&a;&a;&a;&a;&a;">
<!ENTITY c "&b;&b;&b;&b;&b;&b;&b;&b;&b;&b;">]>
<gpOBJECT><gpPARAM name="x">&c;</gpPARAM></gpOBJECT>"""

XXE = b"""<?xml version="1.0"?>
<!DOCTYPE gpOBJECT [<!ENTITY xxe SYSTEM "file:///etc/passwd">]>
<gpOBJECT><gpPARAM name="x">&xxe;</gpPARAM></gpOBJECT>"""

EXTERNAL_DTD_ENTITY = b"""<?xml version="1.0"?>
<!DOCTYPE USER SYSTEM "http://127.0.0.1:9/gpOBJECT.DTD">
<gpOBJECT><gpPARAM name="x">&fromdtd;</gpPARAM></gpOBJECT>"""


@pytest.mark.parametrize("data, words", [
    (BILLION_LAUGHS, "internal subset"),
    (XXE, "internal subset"),
    (EXTERNAL_DTD_ENTITY, "entit"),
    (b"", "not well-formed"),
    (b"<gpOBJECT><gpPARAM name='x'>", "not well-formed"),
    (b"\xff\xfe<gpOBJECT/>", "not"),
    (b"<other><gpPARAM name='x'>1</gpPARAM></other>", "root element is <other>"),
    (b"<gpOBJECT><gpPARAM>1</gpPARAM></gpOBJECT>", "no name"),
    (b"<gpOBJECT><item name='x'>1</item></gpOBJECT>", "unexpected <item>"),
    (b"<gpOBJECT><gpPARAM name='x'><b/></gpPARAM></gpOBJECT>", "only text"),
    (b"<gpOBJECT>" + b"<gpPARAM name='x'>1</gpPARAM>" * 3000 + b"</gpOBJECT>", "over the limit"),
])
def test_refuses_hostile_or_malformed_input(data, words):
    with pytest.raises(GpObjectError, match=words):
        gpobject.decode(data)


def test_external_dtd_is_never_fetched():
    # The DOCTYPE names a URL that nothing listens on; a fetch would fail or hang.
    # Without entity references the document is fine: the DTD is simply ignored.
    obj = gpobject.decode(b'<!DOCTYPE USER SYSTEM "http://127.0.0.1:9/gpOBJECT.DTD">'
                          b"<gpOBJECT><gpPARAM name='x'>1</gpPARAM></gpOBJECT>")
    assert obj["x"] == "1"


def test_bad_base64_is_named():
    obj = gpobject.decode(b"<gpOBJECT><gpPARAM name='response' encoding='base64'>@@@</gpPARAM></gpOBJECT>")
    with pytest.raises(GpObjectError, match="'response'"):
        obj.param("response").binary()


def test_require_names_the_missing_parameter():
    with pytest.raises(GpObjectError, match="'uid'"):
        gpobject.decode(gpobject.encode({"uid": ""})).require("uid")


def test_repr_hides_values():
    obj = gpobject.decode(gpobject.encode({"sso_ticket": "AQIC5secret"}))
    assert "AQIC5secret" not in repr(obj)
    assert "AQIC5secret" not in repr(obj.param("sso_ticket"))


def test_job_roles_split_organisation_and_role():
    obj = gpobject.decode(gpobject.encode([
        Param("nhsjobrole2", 'ORG, WITH COMMA, "A":"B":"C"', {"id": "555000000002", "orgcode": "Y1"}),
        Param("nhsjobrole1", 'PLAIN ORG, "Clinical":"Clinical Provision":"Nurse Access Role"',
              {"id": "555000000001", "orgcode": "X1"}),
        Param("nhsjobrole3", "no quoted part", {"id": "555000000003"}),
    ]))
    first, second, third = gpobject.job_roles(obj)
    assert (first.id, first.org_code, first.org_name, first.job_role) == (
        "555000000001", "X1", "PLAIN ORG", '"Clinical":"Clinical Provision":"Nurse Access Role"')
    assert (second.org_name, second.job_role) == ("ORG, WITH COMMA", '"A":"B":"C"')
    assert (third.org_code, third.org_name, third.job_role) == ("", "", "no quoted part")


def test_job_role_without_id_is_refused():
    obj = gpobject.decode(gpobject.encode([Param("nhsjobrole1", 'ORG, "A":"B":"C"')]))
    with pytest.raises(GpObjectError, match="nhsjobrole1 has no id"):
        gpobject.job_roles(obj)


@given(st.one_of(st.binary(max_size=500),
                 st.text(max_size=300).map(lambda t: f"<gpOBJECT>{t}</gpOBJECT>".encode("utf-8", "surrogatepass"))))
def test_any_input_decodes_or_raises_gpobject_error(data):
    try:
        gpobject.decode(data)
    except GpObjectError:
        pass
