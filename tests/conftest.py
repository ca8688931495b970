from __future__ import annotations

import sys
from pathlib import Path

import pytest

sys.path.insert(0, str(Path(__file__).parent))

from hostclient import Host  # noqa: E402


@pytest.fixture
def start_host(tmp_path):
    """Start real host processes; all are stopped at the end of the test."""
    hosts: list[Host] = []

    def start(config: str | None = 'allowed_origins = ["https://ehr.example.nhs.uk"]\n', **kwargs) -> Host:
        host = Host(tmp_path / f"host{len(hosts)}", config, **kwargs)
        hosts.append(host)
        return host

    yield start
    for host in hosts:
        host.stop()


@pytest.fixture
def host(start_host) -> Host:
    return start_host()
