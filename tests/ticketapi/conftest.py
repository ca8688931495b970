"""A Ticket API library with scripted answers, built by gcc for each test run.

The real TicketApiDll.dll exists only on Windows with the NHS Identity Agent;
fake_ticketapi.c exports the same nine functions with the same C signatures,
so the binding under test is the one that loads the real DLL.
"""

from __future__ import annotations

import asyncio
import shutil
import subprocess
import sys
from pathlib import Path

import pytest

HERE = Path(__file__).parent
SOURCE = HERE / "fake_ticketapi.c"

if sys.platform == "win32":  # the fake uses POSIX calls; the binding's tests run elsewhere
    collect_ignore_glob = ["test_*.py"]


def _compile(out: Path, *defines: str) -> Path:
    gcc = shutil.which("gcc")
    if gcc is None:
        pytest.fail("gcc is needed to build the fake Ticket API library (scripts/setup installs it)")
    cmd = [gcc, "-Wall", "-Wextra", "-Werror", "-O1", "-shared", "-fPIC",
           "-fvisibility=hidden", *[f"-D{d}" for d in defines], "-o", str(out), str(SOURCE)]
    subprocess.run(cmd, check=True)
    return out


@pytest.fixture(scope="session")
def fake_builds(tmp_path_factory) -> dict[str, Path]:
    d = tmp_path_factory.mktemp("fake_ticketapi")
    return {
        "decorated": _compile(d / "libfake_ticketapi.so"),
        "undecorated": _compile(d / "libfake_ticketapi_undecorated.so", "UNDECORATED"),
    }


class FakeTicketApi:
    """One private copy of the fake library (its own state), its script and its log."""

    def __init__(self, build: Path, tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
        # A copy per test: the dynamic loader keeps one instance per file, and
        # the fake keeps its state (handle, script position) in that instance.
        self.library = tmp_path / build.name
        shutil.copyfile(build, self.library)
        self.script_path = tmp_path / "script.txt"
        self.log_path = tmp_path / "calls.log"
        self.script_path.write_text("")
        monkeypatch.setenv("FAKE_TICKETAPI_SCRIPT", str(self.script_path))
        monkeypatch.setenv("FAKE_TICKETAPI_LOG", str(self.log_path))

    def script(self, *lines: str) -> None:
        """Set the answers; must happen before the library's first call."""
        self.script_path.write_text("".join(line + "\n" for line in lines))

    def calls(self) -> list[str]:
        if not self.log_path.exists():
            return []
        return self.log_path.read_text().splitlines()

    def count(self, prefix: str) -> int:
        return sum(1 for line in self.calls() if line.startswith(prefix))

    def handle(self) -> int:
        """The instance handle the fake's Initialize returned."""
        for line in self.calls():
            if line.startswith("Initialize -> ") and line != "Initialize -> 0":
                return int(line.split("-> ")[1])
        raise AssertionError("Initialize never succeeded")

    def sizes(self, function: str) -> list[int]:
        """The buffer sizes the binding offered to ``function``, in order."""
        out = []
        for line in self.calls():
            if line.startswith(function + " size="):
                out.append(int(line.split("size=")[1].split()[0]))
        return out


@pytest.fixture
def fake(fake_builds, tmp_path, monkeypatch) -> FakeTicketApi:
    return FakeTicketApi(fake_builds["decorated"], tmp_path, monkeypatch)


@pytest.fixture
def fake_undecorated(fake_builds, tmp_path, monkeypatch) -> FakeTicketApi:
    return FakeTicketApi(fake_builds["undecorated"], tmp_path, monkeypatch)


class ThreadHost:
    """The service's side of the agent seam, as far as this agent uses it:
    blocking calls run in a worker thread, events are collected."""

    def __init__(self, config) -> None:
        self.config = config
        self.id = 1
        self.origin = "https://ehr.example.nhs.uk"
        self.events: list[tuple[str, object]] = []
        self.in_flight = 0
        self.max_in_flight = 0

    async def run_blocking(self, fn, *args):
        self.in_flight += 1
        self.max_in_flight = max(self.max_in_flight, self.in_flight)
        try:
            return await asyncio.to_thread(fn, *args)
        finally:
            self.in_flight -= 1

    def emit(self, event, data) -> None:
        self.events.append((event, data))

    async def prompt(self, kind, data):  # the Identity Agent prompts, never us
        raise AssertionError("the Ticket API agent must not prompt")


def agent_config(library: str | Path | None):
    """A real Config, parsed from the TOML an administrator would write."""
    from cisbridge.config import parse

    lines = ['[agent]', 'kind = "ticketapi"']
    if library is not None:
        lines.append(f"library = {str(library)!r}")
    return parse("\n".join(lines) + "\n")


@pytest.fixture
def make_agent():
    """make_agent(library) -> (agent, ctx); the agent is closed after the test."""
    from cisbridge.agents.ticketapi import TicketApiAgent

    made = []

    def make(library):
        config = agent_config(library)
        host = ThreadHost(config)
        agent = TicketApiAgent(config, host)
        made.append(agent)
        return agent, host

    yield make
    for agent in made:
        asyncio.run(agent.close())
