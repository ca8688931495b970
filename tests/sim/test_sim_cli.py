"""``cisbridge sim`` as a process: what a demo or another test suite starts."""

from __future__ import annotations

import json
import os
import signal
import subprocess
import sys

import pytest

from cisbridge import testca
from cisbridge.spine.server import validate_ticket

from simclient import ONE_ROLE, Card, GasClient


def _start(*args: str, ca_dir) -> subprocess.Popen:
    env = dict(os.environ, CISBRIDGE_TESTCA_DIR=str(ca_dir))
    return subprocess.Popen([sys.executable, "-m", "cisbridge", "sim", "--port", "0", *args],
                            stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True, env=env)


@pytest.fixture
def ca_dir(tmp_path):
    return tmp_path / "ca"


def test_serves_https_with_the_shared_test_ca_until_terminated(ca_dir, card_key):
    proc = _start("--tls", "--idle-time", "300", ca_dir=ca_dir)
    try:
        ready = json.loads(proc.stdout.readline())
        assert ready["url"].startswith("https://127.0.0.1:")
        assert ready["caFile"] == str(ca_dir / "ca.pem")
        assert ONE_ROLE in ready["users"]
        # a card made by another process from the same CA directory is trusted
        ca = testca.load_or_create(ca_dir)
        card = Card(ONE_ROLE, card_key, ca.issue_card_certificate(card_key.public_key(), ONE_ROLE))
        gas = GasClient(ready["url"], ready["caFile"])
        obj = gas.login(card)
        assert obj["sso_session_time"] == "300"
        assert validate_ticket(obj["sso_ticket"], ready["url"], ready["caFile"]).uid == ONE_ROLE
        gas.logout(obj["sso_ticket"], ONE_ROLE)
        assert [e["uid"] for e in gas.admin("/_sim/log?event=logout")["events"]] == [ONE_ROLE]
    finally:
        proc.send_signal(signal.SIGTERM)
        out, err = proc.communicate(timeout=10)
    assert proc.returncode == 0, err
    assert obj["sso_ticket"] not in err  # the log names tickets by reference only


def test_starts_with_a_fault(ca_dir):
    proc = _start("--fault", "http500", ca_dir=ca_dir)
    try:
        ready = json.loads(proc.stdout.readline())
        assert GasClient(ready["url"]).raw("POST", "/login/authactivate", b"")[0] == 500
        assert GasClient(ready["url"]).admin("/_sim/fault")["fault"] == "http500"
    finally:
        proc.send_signal(signal.SIGINT)
        proc.communicate(timeout=10)
    assert proc.returncode == 0


def test_refuses_plain_http_beyond_loopback(ca_dir):
    proc = _start("--host", "0.0.0.0", ca_dir=ca_dir)
    out, err = proc.communicate(timeout=20)
    assert proc.returncode == 2
    assert "loopback" in err and "--tls" in err


def test_bad_users_file_is_explained(ca_dir, tmp_path):
    bad = tmp_path / "users.toml"
    bad.write_text('[[users]]\nuuid = "123"\nname = "X"\n')
    proc = _start("--users", str(bad), ca_dir=ca_dir)
    out, err = proc.communicate(timeout=20)
    assert proc.returncode == 2 and "users[0]" in err and "12 digits" in err


def test_custom_users_file(ca_dir, tmp_path, card_key):
    users = tmp_path / "users.toml"
    users.write_text('[[users]]\nuuid = "123456789012"\nname = "CUSTOM Eve"\n'
                     '[[users.roles]]\nid = "123456789099"\norg_code = "Q1"\norg_name = "ORG"\n'
                     'job_role = \'"A":"B":"C"\'\njob_role_code = "S1:G1:R1"\n')
    proc = _start("--users", str(users), ca_dir=ca_dir)
    try:
        ready = json.loads(proc.stdout.readline())
        assert ready["users"] == ["123456789012"]
        ca = testca.load_or_create(ca_dir)
        card = Card("123456789012", card_key,
                    ca.issue_card_certificate(card_key.public_key(), "123456789012"))
        obj = GasClient(ready["url"]).login(card)
        assert obj["cn"] == "CUSTOM Eve"
        assert obj["nhsjobrole1"] == 'ORG, "A":"B":"C"'
    finally:
        proc.send_signal(signal.SIGTERM)
        proc.communicate(timeout=10)
