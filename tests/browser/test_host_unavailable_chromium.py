"""What a page sees when the host is missing or refuses the extension."""

from __future__ import annotations

import json

import pytest

from browser_support import EXTENSION_ID, HOST_NAME, Browser, call

pytestmark = pytest.mark.browser


def test_missing_host_is_host_unavailable_telling_to_run_doctor(site, tmp_path):
    browser = Browser(tmp_path, config=None)  # no host manifest installed
    try:
        page = browser.open(site["allowed"] + "/")
        outcome = call(page, "getStatus()")
        assert (outcome["ok"], outcome["name"], outcome["code"]) == (False, "CisAuthError", "HOST_UNAVAILABLE")
        assert "not installed" in outcome["message"] and "`cisbridge doctor`" in outcome["message"]
    finally:
        browser.close()


def test_host_that_does_not_list_the_extension_is_host_unavailable(site, tmp_path):
    browser_dir = tmp_path
    config = f'allowed_origins = ["{site["allowed"]}"]\n'
    browser = Browser(browser_dir, config)
    try:
        manifest = browser.profile / "NativeMessagingHosts" / f"{HOST_NAME}.json"
        data = json.loads(manifest.read_text())
        assert data["allowed_origins"] == [f"chrome-extension://{EXTENSION_ID}/"]
        data["allowed_origins"] = ["chrome-extension://aaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaa/"]
        manifest.write_text(json.dumps(data))
        page = browser.open(site["allowed"] + "/")
        outcome = call(page, "getStatus()")
        assert outcome["code"] == "HOST_UNAVAILABLE"
        assert "does not allow this browser extension" in outcome["message"]
        assert "`cisbridge doctor`" in outcome["message"]
        assert browser.host_pids() == []
    finally:
        browser.close()


FUTURE_HOST = r"""
import json, struct, sys
data = json.dumps({"event": "ready", "data": {"version": "2.0.0", "protocol": 2, "agent": "none", "allowedOrigins": ORIGINS}}).encode()
sys.stdout.buffer.write(struct.pack("=I", len(data)) + data)
sys.stdout.buffer.flush()
sys.stdin.buffer.read()
"""


def test_host_of_another_protocol_is_version_mismatch_naming_the_side_to_update(site, tmp_path):
    # Stands in for a host of a future protocol version, which does not exist yet.
    script = tmp_path / "future_host.py"
    script.write_text(FUTURE_HOST.replace("ORIGINS", json.dumps([site["allowed"]])))
    browser = Browser(tmp_path, f'allowed_origins = ["{site["allowed"]}"]\n', host_script=script)
    try:
        page = browser.open(site["allowed"] + "/")
        outcome = call(page, "getStatus()")
        assert (outcome["name"], outcome["code"]) == ("CisAuthError", "VERSION_MISMATCH")
        assert "protocol 2" in outcome["message"] and "Update the cisbridge browser extension" in outcome["message"]
    finally:
        browser.close()
