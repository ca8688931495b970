"""What a page sees when the host is missing or refuses the extension."""

from __future__ import annotations

import json

import pytest

from conftest import EXTENSION_ID, HOST_NAME, Browser, call

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
