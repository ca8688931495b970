"""`cisbridge demo --headless` end to end: the real simulator, SoftHSM2 card,
private pcscd + virtual card, demo EHR back end, Chromium with the built
extension and the real host; the demo answers the prompt windows itself."""

from __future__ import annotations

import os
import shutil
import signal
import struct
import subprocess
import sys
import tempfile
import time
from pathlib import Path

import pytest

REPO = Path(__file__).resolve().parents[2]
sys.path.insert(0, str(REPO / "tests" / "support"))

import pcsc as pcsc_support  # noqa: E402


def reader_available() -> bool:
    try:
        import smartcard  # noqa: F401
    except ImportError:
        return False
    return pcsc_support.available() is None


def need_browser() -> None:
    if not (REPO / "extension" / "dist" / "manifest.json").is_file():
        pytest.fail("extension/dist is missing: run scripts/setup")
    if not (shutil.which("chromium") or os.path.exists("/usr/bin/chromium")):
        pytest.fail("chromium is missing: run scripts/setup")


@pytest.fixture
def private_tmp():
    """A short TMPDIR of the demo's own (pcscd's socket path must stay under 108 bytes),
    so what it leaves behind can be seen."""
    path = Path(tempfile.mkdtemp(prefix="cbt-"))
    yield path
    shutil.rmtree(path, ignore_errors=True)


def demo_env(tmpdir: Path, **extra: str) -> dict[str, str]:
    env = {k: v for k, v in os.environ.items() if k != "DISPLAY"}
    env.update(TMPDIR=str(tmpdir), PYTHONUNBUFFERED="1", **extra)
    return env


def processes_mentioning(text: str) -> list[str]:
    found = []
    for proc in Path("/proc").iterdir():
        if not proc.name.isdigit() or int(proc.name) == os.getpid():
            continue
        try:
            cmdline = (proc / "cmdline").read_bytes().replace(b"\0", b" ").decode(errors="replace")
            state = (proc / "stat").read_text().rsplit(")", 1)[-1].split()[0]
        except OSError:
            continue
        if text in cmdline and state != "Z":
            found.append(f"{proc.name}: {cmdline[:200]}")
    return found


def png_size(path: Path) -> tuple[int, int]:
    data = path.read_bytes()[:24]
    assert data[:8] == b"\x89PNG\r\n\x1a\n", f"{path.name} is not a PNG"
    return struct.unpack(">II", data[16:24])


def assert_nothing_left(tmpdir: Path) -> None:
    deadline = time.monotonic() + 5
    while processes_mentioning(str(tmpdir)) and time.monotonic() < deadline:
        time.sleep(0.1)
    assert processes_mentioning(str(tmpdir)) == []
    assert list(tmpdir.iterdir()) == [], "the demo left temporary files"


@pytest.mark.browser
@pytest.mark.slow
def test_headless_demo_succeeds_at_every_step_and_saves_screenshots(private_tmp):
    need_browser()
    shots = private_tmp.parent / f"{private_tmp.name}-shots"
    try:
        result = subprocess.run(
            [sys.executable, "-m", "cisbridge", "demo", "--screenshots", str(shots)],
            env=demo_env(private_tmp), capture_output=True, text=True, timeout=90,
        )
        report = result.stdout + result.stderr
        assert result.returncode == 0, report
        steps = {line[2:].split(":", 1)[0]: line for line in result.stdout.splitlines() if line[:1] in "✓✗"}
        expected = ["page", "getTicket", "sign"] + (["card removed"] if reader_available() else [])
        assert list(steps) == expected, report
        assert all(line.startswith("✓") and line.endswith(" ms)") for line in steps.values()), report
        assert "role chosen (3 offered)" in steps["getTicket"]
        assert "MANYROLES Bob Mr" in steps["getTicket"]
        assert "3 signatures verified by the back end" in steps["sign"]
        if reader_available():
            assert "The Spine no longer accepts the ticket" in steps["card removed"]

        names = sorted(p.name for p in shots.iterdir())
        wanted = ["page-ready", "prompt-passcode", "prompt-role", "page-logged-in", "prompt-consent", "page-signed"]
        if reader_available():
            wanted.append("page-card-removed")
        assert [n.split("-", 1)[1].removesuffix(".png") for n in names] == wanted
        for name in names:
            width, height = png_size(shots / name)
            assert width >= 300 and height >= 200, (name, width, height)
        assert_nothing_left(private_tmp)
    finally:
        shutil.rmtree(shots, ignore_errors=True)


@pytest.mark.browser
@pytest.mark.slow
def test_a_one_role_user_without_a_reader_is_not_asked_for_a_role(private_tmp):
    need_browser()
    shots = private_tmp.parent / f"{private_tmp.name}-shots"
    try:
        result = subprocess.run(
            [sys.executable, "-m", "cisbridge", "demo", "--headless", "--user", "555000000001", "--no-reader",
             "--screenshots", str(shots)],
            env=demo_env(private_tmp), capture_output=True, text=True, timeout=90,
        )
        report = result.stdout + result.stderr
        assert result.returncode == 0, report
        assert "no virtual reader (--no-reader): card removal is not shown" in result.stdout
        steps = [line for line in result.stdout.splitlines() if line[:1] in "✓✗"]
        assert [line.split(":", 1)[0] for line in steps] == ["✓ page", "✓ getTicket", "✓ sign"], report
        assert "the only role taken without asking" in steps[1] and "ONEROLE Alice Dr" in steps[1]
        assert sorted(p.name.split("-", 1)[1] for p in shots.iterdir()) == sorted(
            ["page-ready.png", "prompt-passcode.png", "page-logged-in.png", "prompt-consent.png", "page-signed.png"])
        assert_nothing_left(private_tmp)
    finally:
        shutil.rmtree(shots, ignore_errors=True)


@pytest.mark.browser
@pytest.mark.slow
def test_ctrl_c_stops_every_process_and_removes_the_temporary_files(private_tmp):
    need_browser()
    proc = subprocess.Popen(
        [sys.executable, "-m", "cisbridge", "demo", "--screenshots", str(private_tmp / "shots")],
        env=demo_env(private_tmp), stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True,
    )
    try:
        seen = []
        for line in proc.stdout:  # interrupt once the browser is up and the page is in use
            seen.append(line)
            if line.startswith("✓ page"):
                break
        assert any(line.startswith("✓ page") for line in seen), "".join(seen)
        proc.send_signal(signal.SIGINT)
        rest, _ = proc.communicate(timeout=30)
    finally:
        if proc.poll() is None:
            proc.kill()
            proc.wait()
    assert "stopping" in rest
    shutil.rmtree(private_tmp / "shots", ignore_errors=True)
    assert_nothing_left(private_tmp)


def test_a_missing_browser_is_named_with_the_fix(private_tmp):
    result = subprocess.run(
        [sys.executable, "-m", "cisbridge", "demo", "--headless"],
        env=demo_env(private_tmp, CISBRIDGE_CHROMIUM="/nonexistent/chromium"),
        capture_output=True, text=True, timeout=60,
    )
    assert result.returncode == 2
    assert "Chromium is not installed" in result.stderr
    assert "scripts/setup" in result.stderr
    assert list(private_tmp.iterdir()) == []
