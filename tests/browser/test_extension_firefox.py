"""The same dist/ in Firefox ESR: installed as a temporary add-on over
WebDriver BiDi, with the real host registered under a private HOME."""

from __future__ import annotations

import json
import os
import shutil
import socket
import subprocess
import sys
import time

import pytest

from bidi import BiDi
from conftest import DIST, HOST_NAME

pytestmark = pytest.mark.browser

FIREFOX_ID = "cisbridge@cisbridge.org"
CALL = (
    "(async () => {{ if (!window.cisAuth) return {{ok: false, missing: true}};"
    " try {{ return {{ok: true, value: await window.cisAuth.{0}}}; }}"
    " catch (e) {{ return {{ok: false, name: e.name, code: e.code, message: e.message}}; }} }})()"
)


@pytest.fixture(scope="module")
def firefox(site, tmp_path_factory):
    binary = shutil.which("firefox-esr") or shutil.which("firefox")
    if binary is None:
        pytest.fail("firefox-esr is not installed (scripts/setup installs it)")
    work = tmp_path_factory.mktemp("firefox")
    home = work / "home"
    hosts = home / ".mozilla" / "native-messaging-hosts"
    hosts.mkdir(parents=True)
    config = work / "config.toml"
    config.write_text(f'allowed_origins = ["{site["allowed"]}"]\n\n[agent]\nkind = "none"\n')
    launcher = work / "cisbridge-host"
    launcher.write_text(
        "#!/bin/sh\n"
        f"echo \"$@\" >> '{work / 'host.argv'}'\n"
        f"export CISBRIDGE_CONFIG='{config}' CISBRIDGE_LOG_DIR='{work / 'host-log'}'\n"
        f"exec '{sys.executable}' -m cisbridge host \"$@\"\n"
    )
    launcher.chmod(0o755)
    (hosts / f"{HOST_NAME}.json").write_text(json.dumps({
        "name": HOST_NAME, "description": "cisbridge native host (browser test)", "path": str(launcher),
        "type": "stdio", "allowed_extensions": [FIREFOX_ID],
    }))
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        port = s.getsockname()[1]
    profile = work / "profile"
    profile.mkdir()
    proc = subprocess.Popen(
        [binary, "--headless", "--no-remote", "--profile", str(profile), "--remote-debugging-port", str(port)],
        env=dict(os.environ, HOME=str(home)), stdout=open(work / "firefox.log", "wb"), stderr=subprocess.STDOUT,
        start_new_session=True,
    )
    deadline = time.monotonic() + 60
    while True:
        try:
            bidi = BiDi(f"ws://127.0.0.1:{port}/session")
            break
        except OSError:
            if proc.poll() is not None or time.monotonic() > deadline:
                raise RuntimeError(f"firefox did not start: see {work / 'firefox.log'}") from None
            time.sleep(0.2)
    bidi.send("session.new", {"capabilities": {}})
    installed = bidi.send("webExtension.install", {"extensionData": {"type": "path", "path": str(DIST)}})
    assert installed["extension"] == FIREFOX_ID
    context = bidi.send("browsingContext.getTree")["contexts"][0]["context"]
    yield {"bidi": bidi, "context": context, "work": work}
    try:
        bidi.send("session.end", timeout=10)
    except Exception:
        pass
    proc.terminate()
    try:
        proc.wait(timeout=15)
    except subprocess.TimeoutExpired:
        os.killpg(proc.pid, 9)
        proc.wait()
    bidi.close()


def run(firefox, url: str, expression: str) -> dict:
    bidi, context = firefox["bidi"], firefox["context"]
    bidi.send("browsingContext.navigate", {"context": context, "url": url, "wait": "complete"})
    return bidi.evaluate_json(context, CALL.format(expression))


def test_firefox_page_to_host_and_back(firefox, site):
    status = run(firefox, site["allowed"] + "/", "getStatus()")
    assert status["ok"], status
    assert (status["value"]["protocol"], status["value"]["agent"]) == (1, "none")
    assert status["value"]["extension"] == json.loads((DIST / "manifest.json").read_text())["version"]
    assert run(firefox, site["allowed"] + "/", "getTicketNoAuth()") == {"ok": True, "value": None}
    # Firefox starts the host with the manifest path and the add-on id.
    argv = (firefox["work"] / "host.argv").read_text().split()
    assert argv[-1] == FIREFOX_ID


def test_firefox_other_origin_is_refused(firefox, site):
    outcome = run(firefox, site["other"] + "/", "getTicket()")
    assert (outcome["ok"], outcome["name"], outcome["code"]) == (False, "CisAuthError", "ORIGIN_NOT_ALLOWED")
