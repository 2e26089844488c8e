"""Fixtures of the sandbox tests: an HTTP session and a client for the ``sandbox`` fixture."""

from __future__ import annotations

from collections.abc import AsyncIterator

import aiohttp
import pytest
from sandbox_helpers import Client

from bulkimport.sandbox import SandboxHandle


@pytest.fixture
async def session() -> AsyncIterator[aiohttp.ClientSession]:
    async with aiohttp.ClientSession() as http:
        yield http


@pytest.fixture
def client(session: aiohttp.ClientSession, sandbox: SandboxHandle) -> Client:
    return Client(session, sandbox)
