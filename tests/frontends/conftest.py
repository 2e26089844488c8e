"""Fixtures for tests behind a real nginx: ``nginx`` and ``nginx_factory``.

``nginx`` is the stock front (``NginxFront()``) in front of the ``sandbox`` fixture;
``nginx_factory(upstream, NginxFront(...))`` starts more, in front of any sandbox (a
``SandboxHandle`` or a base URL). Every one is stopped at teardown. Without an nginx binary
these fixtures skip, saying why; an nginx that does not start fails the test.
"""

from __future__ import annotations

from collections.abc import AsyncIterator, Awaitable, Callable
from contextlib import AsyncExitStack
from pathlib import Path

import pytest

from bulkimport.sandbox import SandboxHandle
from tests.frontends.nginx import NginxFront, NginxHandle, find_nginx, missing_reason, serve_nginx

NginxFactory = Callable[..., Awaitable[NginxHandle]]


@pytest.fixture
def nginx_binary() -> str:
    """The nginx binary; the test skips when there is none."""
    binary = find_nginx()
    if binary is None:
        pytest.skip(missing_reason())
    return binary


@pytest.fixture
async def nginx_factory(tmp_path: Path, nginx_binary: str) -> AsyncIterator[NginxFactory]:
    """``await nginx_factory(sandbox, NginxFront(read_timeout_s=1))``: a running nginx, its
    files in ``tmp_path / "nginx-N"``."""
    async with AsyncExitStack() as stack:
        started = 0

        async def start(
            upstream: SandboxHandle | str, front: NginxFront | None = None
        ) -> NginxHandle:
            nonlocal started
            started += 1
            base = upstream if isinstance(upstream, str) else upstream.base_url
            folder = tmp_path / f"nginx-{started}"
            return await stack.enter_async_context(
                serve_nginx(base, folder, front, binary=nginx_binary)
            )

        yield start


@pytest.fixture
async def nginx(sandbox: SandboxHandle, nginx_factory: NginxFactory) -> NginxHandle:
    """The stock front in front of the ``sandbox`` fixture."""
    return await nginx_factory(sandbox)
