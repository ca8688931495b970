"""The host as the browser sees it: frames, ready, bad input, who may call, exit."""

from __future__ import annotations

import json
from pathlib import Path
import sys
import signal
import time

import pytest
from hostclient import DEV_CHROME_ID, ORIGIN

OK_CONFIG = 'allowed_origins = ["https://ehr.example.nhs.uk", "http://127.0.0.1:8080", "https://ehr.example.nhs.uk:8443"]\n'


def still_serving(host) -> None:
    reply = host.call("getStatus")
    assert "result" in reply, reply


# ------------------------------------------------------------------ basics


def test_ready_comes_first_with_allowed_origins(start_host):
    host = start_host(OK_CONFIG)
    assert host.ready == {
        "event": "ready",
        "data": {
            "version": host.ready["data"]["version"],
            "protocol": 1,
            "agent": "none",
            "allowedOrigins": ["https://ehr.example.nhs.uk", "http://127.0.0.1:8080", "https://ehr.example.nhs.uk:8443"],
        },
    }


def test_get_status_works_without_card_or_agent(host):
    result = host.call("getStatus")["result"]
    assert result["protocol"] == 1
    assert result["agent"] == "none"
    assert result["cardPresent"] is False
    assert result["session"] == {"active": False}
    assert isinstance(result["readers"], list)


def test_none_agent_has_no_session_and_says_how_to_configure_one(host):
    assert host.call("getTicketNoAuth")["result"] == {"ticket": None}
    error = host.call("getTicket")["error"]
    assert error["code"] == "AGENT_UNAVAILABLE"
    assert "[agent] kind" in error["message"]


# --------------------------------------------------------------- bad input

BAD_FRAMES = {
    "bad json": (b'{"id": 1, "method": ', None),
    "array": (b"[1, 2]", None),
    "number": (b"42", None),
    "string": (b'"getStatus"', None),
    "null": (b"null", None),
    "not utf-8": (b'{"id": 1, "method": "getStatus", "origin": "\xff\xfe"}', 1),
    "empty frame": (b"", None),
    "missing id": (b'{"method": "getStatus", "origin": "https://ehr.example.nhs.uk"}', None),
    "missing method": (b'{"id": 7, "origin": "https://ehr.example.nhs.uk"}', 7),
    "missing origin": (b'{"id": "r-8", "method": "getStatus"}', "r-8"),
    "unknown method": (b'{"id": 9, "method": "format", "origin": "https://ehr.example.nhs.uk"}', 9),
    "unknown field": (b'{"id": 10, "method": "getStatus", "origin": "https://ehr.example.nhs.uk", "x": 1}', 10),
    "unknown param": (b'{"id": 11, "method": "getStatus", "origin": "https://ehr.example.nhs.uk", "params": {"x": 1}}', 11),
    "id is bool": (b'{"id": true, "method": "getStatus", "origin": "https://ehr.example.nhs.uk"}', None),
    "id is float": (b'{"id": 1.5, "method": "getStatus", "origin": "https://ehr.example.nhs.uk"}', None),
    "id too long": (json.dumps({"id": "x" * 500, "method": "getStatus", "origin": ORIGIN}).encode(), None),
    "origin not a string": (b'{"id": 12, "method": "getStatus", "origin": 5}', 12),
    "params not an object": (b'{"id": 13, "method": "getStatus", "origin": "https://ehr.example.nhs.uk", "params": []}', 13),
    "sign without params": (b'{"id": 14, "method": "sign", "origin": "https://ehr.example.nhs.uk"}', 14),
    "sign bad algorithm": (
        b'{"id": 15, "method": "sign", "origin": "https://ehr.example.nhs.uk", "params": {"algorithm": "MD5", "payloads": []}}',
        15,
    ),
    "prompt value wrong type": (
        b'{"id": 16, "method": "promptReply", "origin": "https://ehr.example.nhs.uk", "params": {"prompt": 1, "value": 1234}}',
        16,
    ),
    "cancel without target": (b'{"id": 17, "method": "cancel", "origin": "https://ehr.example.nhs.uk", "params": {}}', 17),
    "origin not an origin": (b'{"id": 18, "method": "getStatus", "origin": "https://a.example/path"}', 18),
}


@pytest.mark.parametrize("settled", [False, True], ids=["first frame", "after getStatus"])
@pytest.mark.parametrize("name", BAD_FRAMES)
def test_bad_input_is_refused_and_the_host_keeps_serving(host, name, settled):
    # Once settled, frames are first offered to the reader thread's answerer:
    # it must give every bad one to the event loop, which answers it.
    payload, expected_id = BAD_FRAMES[name]
    if settled:
        still_serving(host)
        still_serving(host)
    host.send_frame(payload)
    frame = host.next_frame()
    assert frame["id"] == expected_id
    assert frame["error"]["code"] == "INVALID_REQUEST"
    assert frame["error"]["message"]
    still_serving(host)


def test_settled_requests_are_answered_by_the_reader_thread(start_host):
    """After the first getStatus, getStatus and getTicketNoAuth are answered
    on the reader thread ("at once" in the debug log), everything else and
    every error still by the event loop."""
    host = start_host(f'allowed_origins = ["{ORIGIN}"]\n[logging]\nlevel = "debug"\n')
    first = host.call("getStatus")["result"]
    for _ in range(3):
        assert host.call("getStatus")["result"] == first
    for _ in range(2):  # the loop imports a method's handlers on its first use
        assert host.call("getTicketNoAuth")["result"] == {"ticket": None}
    assert host.call("getStatus", origin="https://other.example.nhs.uk")["error"]["code"] == "ORIGIN_NOT_ALLOWED"
    assert host.call("getStatus", origin="http://ehr.example.nhs.uk")["error"]["code"] == "INSECURE_CONTEXT"
    assert host.call("getTicket", {})["error"]["code"] == "AGENT_UNAVAILABLE"
    host.stop()
    log = host.log_text()
    assert f"getStatus 1 from {ORIGIN} ok in" in log  # the loop settles the service
    for request_id in (2, 3, 4):
        assert f"getStatus {request_id} from {ORIGIN} ok at once" in log
    assert f"getTicketNoAuth 5 from {ORIGIN} ok in" in log and f"getTicketNoAuth 6 from {ORIGIN} ok at once" in log
    assert "getStatus 7 -> ORIGIN_NOT_ALLOWED" in log and "getStatus 8 -> INSECURE_CONTEXT" in log
    assert "getTicket 9 -> AGENT_UNAVAILABLE" in log


def test_many_settled_requests_in_one_write_are_each_answered_once(host):
    from cisbridge.framing import frame

    still_serving(host)
    frames = [{"id": i, "method": "getStatus" if i % 3 else "getTicketNoAuth", "origin": ORIGIN} for i in range(300)]
    frames[150] = {"id": 150, "method": "getCertificate", "origin": ORIGIN}  # the loop's: the next ones queue behind it
    frames[151] = {"id": 151, "method": "getStatus", "origin": "https://other.example.nhs.uk"}
    host.send_bytes(b"".join(frame(json.dumps(f).encode()) for f in frames))
    answers = {}
    for _ in frames:
        answer = host.next_frame()
        assert answer["id"] not in answers
        answers[answer["id"]] = answer
    assert sorted(answers) == list(range(300))
    assert answers[151]["error"]["code"] == "ORIGIN_NOT_ALLOWED"
    assert all("result" in a for i, a in answers.items() if i not in (150, 151))
    assert all(answers[i]["result"] == {"ticket": None} for i in range(0, 300, 3) if i != 150)


def test_error_messages_name_the_problem(host):
    host.send_frame(b'{"id": 1, "method": "getStatus", "origin": "https://ehr.example.nhs.uk", "colour": 1}')
    assert "colour" in host.next_frame()["error"]["message"]
    host.send_frame(b'{"id": 2, "method": "nope", "origin": "https://ehr.example.nhs.uk"}')
    assert "$.method" in host.next_frame()["error"]["message"]


def test_oversize_frame_is_discarded_and_answered_with_its_id(start_host):
    host = start_host('allowed_origins = ["https://ehr.example.nhs.uk"]\n[host]\nmax_request_bytes = 4096\n')
    big = json.dumps({"id": 77, "method": "sign", "origin": ORIGIN, "params": {"algorithm": "RS256", "payloads": [{"id": "a", "payload": "A" * 10000}]}})
    host.send_frame(big.encode())
    frame = host.next_frame()
    assert frame["id"] == 77
    assert frame["error"]["code"] == "INVALID_REQUEST"
    assert "4096" in frame["error"]["message"]
    still_serving(host)


def test_oversize_frame_at_the_default_limit_arriving_in_pieces(host):
    body = b'{"id": "big", "method": "getStatus", "origin": "https://ehr.example.nhs.uk", "pad": "' + b"x" * (5 * 1024 * 1024) + b'"}'
    data = len(body).to_bytes(4, "little") + body
    for i in range(0, len(data), 1 << 20):
        host.send_bytes(data[i : i + (1 << 20)])
    frame = host.next_frame(timeout=10)
    assert frame["id"] == "big"
    assert frame["error"]["code"] == "INVALID_REQUEST"
    still_serving(host)


def test_requests_split_a_byte_at_a_time_are_answered(host):
    payload = json.dumps({"id": 5, "method": "getStatus", "origin": ORIGIN}).encode()
    data = len(payload).to_bytes(4, "little") + payload
    for b in data:
        host.send_bytes(bytes([b]))
    assert host.next_frame()["id"] == 5


def test_many_requests_in_one_write_are_each_answered_once(host):
    frames = b""
    for i in range(200):
        payload = json.dumps({"id": i, "method": "getStatus" if i % 2 else "getTicketNoAuth", "origin": ORIGIN}).encode()
        frames += len(payload).to_bytes(4, "little") + payload
    host.send_bytes(frames)
    seen = [host.next_frame()["id"] for _ in range(200)]
    assert sorted(seen) == list(range(200))


# --------------------------------------------------------- who may call


@pytest.mark.parametrize(
    "origin, code",
    [
        ("https://evil.example", "ORIGIN_NOT_ALLOWED"),
        ("https://ehr.example.nhs.uk:444", "ORIGIN_NOT_ALLOWED"),
        ("https://sub.ehr.example.nhs.uk", "ORIGIN_NOT_ALLOWED"),
        ("http://ehr.example.nhs.uk", "INSECURE_CONTEXT"),
        ("http://127.0.0.1:8081", "ORIGIN_NOT_ALLOWED"),
        ("http://localhost:8080", "ORIGIN_NOT_ALLOWED"),
        ("null", "ORIGIN_NOT_ALLOWED"),
        ("file://", "INVALID_REQUEST"),
        ("chrome-extension://abc", "INVALID_REQUEST"),
    ],
)
def test_origins_outside_the_allowlist_are_refused(start_host, origin, code):
    host = start_host(OK_CONFIG)
    error = host.call("getStatus", origin=origin)["error"]
    assert error["code"] == code


@pytest.mark.parametrize(
    "origin",
    ["https://ehr.example.nhs.uk", "https://EHR.example.nhs.uk", "https://ehr.example.nhs.uk:443", "http://127.0.0.1:8080", "https://ehr.example.nhs.uk:8443"],
)
def test_allowed_origins_match_exactly_after_normalising(start_host, origin):
    host = start_host(OK_CONFIG)
    assert "result" in host.call("getStatus", origin=origin)


def test_refused_origin_never_reaches_the_agent(host):
    error = host.call("getTicket", origin="https://evil.example")["error"]
    assert error["code"] == "ORIGIN_NOT_ALLOWED"  # not AGENT_UNAVAILABLE: the agent was not asked


@pytest.mark.parametrize(
    "argv",
    [[], ["chrome-extension://aaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaa/"], ["/some/manifest.json", "other@example.org"], ["something"]],
    ids=["no caller", "unknown chrome extension", "unknown firefox add-on", "garbage"],
)
def test_unknown_callers_are_refused_every_request(start_host, argv):
    host = start_host(argv=argv)
    assert host.ready["data"]["allowedOrigins"] == []
    for method in ("getStatus", "getTicketNoAuth", "getTicket"):
        error = host.call(method)["error"]
        assert error["code"] == "ORIGIN_NOT_ALLOWED"
        assert "allowed_extensions" in error["message"]


def test_firefox_caller_is_accepted(start_host):
    host = start_host(argv=["/home/u/.mozilla/native-messaging-hosts/org.cisbridge.host.json", "cisbridge@cisbridge.org"])
    assert "result" in host.call("getStatus")


def test_chrome_caller_on_windows_with_parent_window(start_host):
    host = start_host(argv=[f"chrome-extension://{DEV_CHROME_ID}/", "--parent-window=1234"])
    assert "result" in host.call("getStatus")


def test_allowed_extensions_from_config_replace_the_defaults(start_host):
    other = "b" * 32
    config = f'allowed_origins = ["https://ehr.example.nhs.uk"]\nallowed_extensions = ["chrome-extension://{other}/"]\n'
    assert "result" in start_host(config, argv=[f"chrome-extension://{other}/"]).call("getStatus")
    assert start_host(config).call("getStatus")["error"]["code"] == "ORIGIN_NOT_ALLOWED"


# ------------------------------------------------------------ bad config


@pytest.mark.parametrize(
    "text, key",
    [
        ("allowed_origins = [\n", None),
        ('allowed_origins = ["https://a.example"]\ncolour = "red"\n', "colour"),
        ('allowed_origins = "https://a.example"\n', "allowed_origins"),
        ('allowed_origins = ["http://ehr.example.nhs.uk"]\n', "allowed_origins[0]"),
        ('allowed_origins = ["https://a.example", "https://*.nhs.uk"]\n', "allowed_origins[1]"),
        ('[agent]\nkind = "magic"\n', "agent.kind"),
        ('[pkcs11]\nmodul = "/x.so"\n', "pkcs11.modul"),
        ('[host]\nmax_outstanding = 0\n', "host.max_outstanding"),
        ('allowed_extensions = ["not an id"]\n', "allowed_extensions[0]"),
    ],
)
def test_invalid_config_keeps_the_host_up_and_names_file_and_key(start_host, text, key):
    host = start_host(text)
    # ready is written before the schema check: it may name origins that are
    # themselves valid, but never one that is not, and every request is refused
    assert host.ready["data"]["allowedOrigins"] in ([], ["https://a.example"])
    for method in ("getStatus", "getTicket"):
        error = host.call(method)["error"]
        assert error["code"] == "INTERNAL"
        assert "config.toml" in error["message"]
        assert error["detail"]["config"]["file"].endswith("config.toml")
        assert error["detail"]["config"]["key"] == key
        if key:
            assert key in error["message"]


def test_missing_named_config_file_is_reported(start_host, tmp_path):
    host = start_host(None, env={"CISBRIDGE_CONFIG": str(tmp_path / "nope.toml")})
    error = host.call("getStatus")["error"]
    assert "nope.toml" in error["message"]


def test_no_config_at_all_refuses_origins_and_says_where_to_allow_them(start_host):
    host = start_host(None)
    assert host.ready["data"]["allowedOrigins"] == []
    error = host.call("getStatus")["error"]
    assert error["code"] == "ORIGIN_NOT_ALLOWED"
    assert "allowed_origins" in error["message"]


def test_a_user_without_a_home_directory_gets_the_system_config_and_a_host_that_serves():
    """A uid with no passwd entry and no HOME (some managed desktops, containers):
    the user config and the parse cache have nowhere to live; the host must
    still answer with the administrator's configuration, never exit."""
    import os
    import shutil
    import stat
    import subprocess
    import tempfile

    from hostclient import CHROME_CALLER
    from support.interpreter import checkout_python

    from cisbridge.framing import frame
    from cisbridge.install.installer import launcher_argv

    if os.name != "posix" or os.geteuid() != 0 or not shutil.which("setpriv"):
        pytest.skip("needs root and setpriv to run as a uid without a passwd entry")
    as_nobody = ["setpriv", "--reuid", "54321", "--regid", "54321", "--clear-groups"]
    python = checkout_python()
    if subprocess.run([*as_nobody, python, "-I", "-c", "import cisbridge"], capture_output=True).returncode:
        pytest.skip("this checkout's Python cannot be run by another uid here")
    system = Path(tempfile.mkdtemp(prefix="cisbridge-nohome-"))
    try:
        (system / "cisbridge").mkdir()
        (system / "cisbridge/config.toml").write_text(f'allowed_origins = ["{ORIGIN}"]\n')
        for path in (system, system / "cisbridge", system / "cisbridge/config.toml"):
            path.chmod(path.stat().st_mode | stat.S_IRGRP | stat.S_IROTH | stat.S_IXGRP | stat.S_IXOTH)
        request = frame(json.dumps({"id": 1, "method": "getStatus", "origin": ORIGIN}).encode())
        proc = subprocess.Popen(
            [*as_nobody, *launcher_argv(python), CHROME_CALLER],
            stdin=subprocess.PIPE, stdout=subprocess.PIPE, stderr=subprocess.PIPE, cwd="/",
            env={"PATH": os.environ["PATH"], "XDG_CONFIG_DIRS": str(system)},
        )
        try:
            ready = _read_frame(proc.stdout)
            proc.stdin.write(request)
            proc.stdin.flush()
            answer = _read_frame(proc.stdout)
            proc.stdin.close()
            assert proc.wait(10) == 0
            stderr = proc.stderr.read()
        finally:
            proc.kill()
            proc.wait()
            for stream in (proc.stdin, proc.stdout, proc.stderr):
                stream.close()
    finally:
        shutil.rmtree(system)
    assert ready["data"]["allowedOrigins"] == [ORIGIN]
    assert answer["id"] == 1 and "result" in answer, answer
    assert b"no home directory: only the system configuration is read" in stderr  # logged to stderr


def _read_frame(stream) -> dict:
    size = int.from_bytes(stream.read(4), sys.byteorder)
    return json.loads(stream.read(size))


# ------------------------------------------------------------- stdout


def test_stray_prints_never_reach_the_frame_stream(tmp_path):
    """A library that prints (or writes to fd 1) must not corrupt the frames."""
    import os
    import subprocess
    import sys

    from hostclient import CHROME_CALLER, HEADER

    config = tmp_path / "config.toml"
    config.write_text('allowed_origins = ["https://ehr.example.nhs.uk"]\n')
    script = (
        "import os, sys, cisbridge.actions.status as s, cisbridge.host as h\n"
        "orig = s.get_status\n"
        "def noisy(ctx, params):\n"
        "    print('stray print'); os.write(1, b'stray fd write\\n'); sys.stdout.flush()\n"
        "    return orig(ctx, params)\n"
        "s.get_status = noisy\n"
        f"h.main([{CHROME_CALLER!r}])\n"
    )
    env = dict(os.environ, CISBRIDGE_CONFIG=str(config), CISBRIDGE_LOG_DIR=str(tmp_path / "log"), XDG_CACHE_HOME=str(tmp_path / "cache"))
    payload = json.dumps({"id": 1, "method": "getStatus", "origin": ORIGIN}).encode()
    proc = subprocess.Popen(
        [sys.executable, "-c", script], stdin=subprocess.PIPE, stdout=subprocess.PIPE, stderr=subprocess.PIPE, env=env
    )
    proc.stdin.write(HEADER.pack(len(payload)) + payload)
    proc.stdin.flush()
    frames = []
    for _ in range(2):  # ready, then the answer: anything stray would break the framing
        (size,) = HEADER.unpack(proc.stdout.read(4))
        frames.append(json.loads(proc.stdout.read(size)))
    proc.stdin.close()
    assert proc.wait(10) == 0
    assert proc.stdout.read() == b""
    stderr = proc.stderr.read()
    proc.stdout.close()
    proc.stderr.close()
    assert [f.get("event") or f.get("id") for f in frames] == ["ready", 1]
    assert b"stray print" in stderr and b"stray fd write" in stderr


# --------------------------------------------------------------- exit


def test_stdin_eof_exits_cleanly_within_a_second(host):
    still_serving(host)
    start = time.monotonic()
    host.close_stdin()
    assert host.wait_exit(timeout=5) == 0
    assert time.monotonic() - start < 1.0


def test_truncated_frame_then_eof_exits_cleanly(host):
    host.send_bytes((100).to_bytes(4, "little") + b'{"id": 1')
    host.close_stdin()
    assert host.wait_exit(timeout=1) == 0


def test_truncated_header_then_eof_exits_cleanly(host):
    host.send_bytes(b"\x10\x00")
    host.close_stdin()
    assert host.wait_exit(timeout=1) == 0


def test_sigterm_exits_cleanly_within_a_second(host):
    still_serving(host)
    start = time.monotonic()
    host.proc.send_signal(signal.SIGTERM)
    assert host.wait_exit(timeout=5) == 0
    assert time.monotonic() - start < 1.0


def test_start_up_imports_nothing_heavy(tmp_path):
    """pkcs11, pyscard, cryptography and HTTP clients load on first need, not at start."""
    import os
    import subprocess
    import sys

    from hostclient import CHROME_CALLER

    config = tmp_path / "config.toml"
    config.write_text('allowed_origins = ["https://ehr.example.nhs.uk"]\n[agent]\nkind = "gas"\nurl = "https://gas.example"\n')
    env = dict(os.environ, CISBRIDGE_CONFIG=str(config), CISBRIDGE_LOG_DIR=str(tmp_path / "log"), XDG_CACHE_HOME=str(tmp_path / "cache"))
    out = subprocess.run(
        [sys.executable, "-X", "importtime", "-m", "cisbridge", "host", CHROME_CALLER],
        input=b"", capture_output=True, env=env, timeout=20,
    )
    assert out.returncode == 0
    imported = {line.split("|")[-1].strip() for line in out.stderr.decode().splitlines() if line.startswith("import time:")}
    assert "cisbridge.service" in imported  # the host did get as far as serving
    heavy = {"pkcs11", "smartcard", "cryptography", "asn1crypto", "http.client", "urllib.request", "cisbridge.agents.gas"}
    assert not heavy & imported


#: what a cold start cannot afford before ``ready`` (milliseconds each; docs/benchmarks.md)
NOT_BEFORE_READY = {"re", "enum", "typing", "json", "tomllib", "platformdirs", "pathlib", "threading"}


def _imported(stream: bytes) -> set[str]:
    lines = stream.decode("utf-8", "replace").splitlines()
    return {line.split("|")[-1].strip() for line in lines if line.startswith("import time:")} - {"imported package"}


def _imports_around_ready(argv: list[str], env: dict[str, str]) -> tuple[set[str], set[str]]:
    """The modules a host imported before it wrote ``ready``, and after.

    stdout and stderr are one pipe here, so ``-X importtime``'s lines (written
    to stderr as each import finishes) and the ready frame (written to the
    real stdout) arrive in the order the host wrote them."""
    import subprocess
    import struct

    out = subprocess.run(argv, input=b"", stdout=subprocess.PIPE, stderr=subprocess.STDOUT, env=env, timeout=20)
    assert out.returncode == 0, out.stdout[-2000:]
    start = out.stdout.index(b'{"event":"ready"') - 4
    (size,) = struct.unpack("=I", out.stdout[start : start + 4])
    return _imported(out.stdout[:start]), _imported(out.stdout[start + 4 + size :])


@pytest.mark.parametrize("cache", ["warm cache", "cold cache"])
@pytest.mark.parametrize("found", ["CISBRIDGE_CONFIG", "system and user files"])
def test_nothing_before_ready_imports_what_a_cold_start_cannot_afford(tmp_path, found, cache):
    """Run as launchers run it: the config parsed at an earlier start comes
    from the parse cache, so no tomllib; no platformdirs, re, json, ..."""
    import os
    import shutil
    import subprocess

    from hostclient import CHROME_CALLER
    from support.interpreter import checkout_python

    from cisbridge.install.installer import launcher_argv

    python = checkout_python()
    env = {k: v for k, v in os.environ.items() if not k.startswith(("XDG_", "CISBRIDGE_"))}
    env.update(HOME=str(tmp_path / "home"), CISBRIDGE_LOG_DIR=str(tmp_path / "log"))
    text = f'allowed_origins = ["{ORIGIN}"]\n[agent]\nkind = "gas"\nurl = "https://gas.example"\n'
    if found == "CISBRIDGE_CONFIG":
        (tmp_path / "config.toml").write_text(text)
        env["CISBRIDGE_CONFIG"] = str(tmp_path / "config.toml")
    else:
        system, user = tmp_path / "system/cisbridge/config.toml", tmp_path / "home/.config/cisbridge/config.toml"
        for path, content in ((system, text), (user, '[logging]\nlevel = "info"\n')):
            path.parent.mkdir(parents=True)
            path.write_text(content)
        env["XDG_CONFIG_DIRS"] = str(tmp_path / "system")
    launcher = [*launcher_argv(python), CHROME_CALLER]
    argv = [launcher[0], "-X", "importtime", *launcher[1:]]
    cache_file = tmp_path / "home/.cache/cisbridge/config-cache"

    before, after = _imports_around_ready(argv, env)  # the first start parses and writes the cache
    assert "tomllib" in before and oct(cache_file.stat().st_mode & 0o777) == "0o600"
    if cache == "cold cache":
        shutil.rmtree(cache_file.parent)
        before, after = _imports_around_ready(argv, env)
    else:
        before, after = _imports_around_ready(argv, env)
    interpreter = _imported(subprocess.run([python, "-X", "importtime", "-I", "-c", "pass"],
                                           capture_output=True, timeout=20).stderr)
    ours = before - interpreter
    assert {"cisbridge.host", "cisbridge.configfiles", "cisbridge.configcache"} <= ours
    assert "cisbridge.service" in after  # it went on to serve
    if cache == "warm cache":
        assert not ours & NOT_BEFORE_READY, sorted(ours & NOT_BEFORE_READY)
    else:  # parsing a file needs tomllib, and what it brings; nothing else
        assert "tomllib" in ours
        assert not ours & (NOT_BEFORE_READY - {"tomllib", "re", "enum", "typing"})


@pytest.mark.parametrize("data, words", [
    (b'allowed_origins = ["https://a.example\xff"]\n', "not UTF-8"),
    (b"a = " + b"[" * 5000 + b"]" * 5000 + b"\n", "nested too deeply"),
])
def test_a_config_file_tomllib_cannot_read_keeps_the_host_up(start_host, tmp_path, data, words):
    # (these made the host exit before ready: tomllib raised UnicodeDecodeError and RecursionError)
    config = tmp_path / "unreadable.toml"
    config.write_bytes(data)
    host = start_host(None, env={"CISBRIDGE_CONFIG": str(config)})
    assert host.ready["data"]["allowedOrigins"] == []
    error = host.call("getStatus")["error"]
    assert error["code"] == "INTERNAL" and "unreadable.toml" in error["message"] and words in error["message"]
