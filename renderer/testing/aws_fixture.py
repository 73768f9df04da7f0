"""pytest fixtures for moto_server and a credstash table in it.

`moto_server` runs once per test session; `aws` resets it for each test and points the
AWS variables (AWS_ENDPOINT_URL and fake credentials) at it; `credstash_table` adds the
KMS key `alias/credstash` and an empty credstash table with a stream.
"""

from __future__ import annotations

from collections.abc import Iterator

import pytest

from renderer.testing.aws import CredstashStore, MotoServer


@pytest.fixture(scope="session")
def moto_server() -> Iterator[MotoServer]:
    server = MotoServer().start()
    yield server
    server.stop()


@pytest.fixture
def aws(moto_server: MotoServer, monkeypatch: pytest.MonkeyPatch) -> MotoServer:
    moto_server.reset()
    for name, value in moto_server.env().items():
        monkeypatch.setenv(name, value)
    return moto_server


@pytest.fixture
def credstash_table(aws: MotoServer) -> CredstashStore:
    return CredstashStore(aws).create()
