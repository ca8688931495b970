"""Secrets never reach the log: passcodes, tickets, signatures."""

from __future__ import annotations

import json
import logging

from hostclient import ORIGIN

from cisbridge import logs

TICKET = "AQIC5wM2LY4Sfcy73z2zeTRzPNXOdr5U6mC2NyUVxy0BffY=@AAJTSQACMDE=#"


def test_the_formatter_redacts_tickets_in_messages_and_tracebacks():
    formatter = logs.RedactingFormatter("%(message)s")
    record = logging.LogRecord("cisbridge", logging.INFO, __file__, 1, "ticket is %s", (TICKET,), None)
    assert TICKET not in formatter.format(record)
    try:
        raise ValueError(f"server said {TICKET}")
    except ValueError:
        import sys

        record = logging.LogRecord("cisbridge", logging.ERROR, __file__, 1, "boom", (), sys.exc_info())
    text = formatter.format(record)
    assert "server said" in text and TICKET not in text and "AQIC5wM2" not in text


def test_secrets_sent_to_the_host_never_appear_in_its_debug_log(start_host):
    host = start_host('allowed_origins = ["https://ehr.example.nhs.uk"]\n[logging]\nlevel = "debug"\n')
    passcode = "PASSCODE-739201"
    payload = "U0lHTkVELURBVEEtU0VDUkVU"
    # a passcode answer to a prompt that does not exist, and one in a malformed frame
    host.call("promptReply", {"prompt": 1, "value": passcode})
    host.send_frame(json.dumps({"id": 2, "method": "promptReply", "origin": ORIGIN, "params": {"prompt": 1, "value": passcode, "x": 1}}).encode())
    host.next_frame()
    # a ticket and a payload inside requests the host refuses
    host.send_frame(json.dumps({"id": 3, "method": "getTicketNoAuth", "origin": ORIGIN, "params": {"ticket": TICKET}}).encode())
    host.next_frame()
    host.call("sign", {"algorithm": "RS256", "payloads": [{"id": "a", "payload": payload}], "description": TICKET}, origin="https://evil.example")
    host.call("getStatus")
    host.stop()
    text = host.log_text()
    assert "getStatus" in text or "promptReply" in text  # the log was written at debug level
    for secret in (passcode, TICKET, "AQIC5wM2", payload):
        assert secret not in text
