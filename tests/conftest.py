"""Fixtures shared by every test: a real sandbox server on a free port."""

from __future__ import annotations

import os
import sys
from collections.abc import AsyncIterator, Awaitable, Callable
from contextlib import AsyncExitStack
from dataclasses import replace
from pathlib import Path
from typing import Any

import hypothesis
import pytest

from bulkimport.sandbox import Faults, SandboxConfig, SandboxHandle, serve_sandbox
from tests.helpers import kill_leftover_processes

# The property tests explore new examples at every run here; in CI (CI set) they run the
# examples their source fixes, so a commit's verdict does not change between two runs. A
# failure prints the example and how to reproduce it either way.
hypothesis.settings.register_profile("ci", derandomize=True, print_blob=True)
if os.environ.get("CI"):
    hypothesis.settings.load_profile("ci")

SandboxFactory = Callable[..., Awaitable[SandboxHandle]]


def pytest_configure(config: pytest.Config) -> None:
    """With PYTHONDONTWRITEBYTECODE set, every test session (each parallel worker) would
    compile the tests' assertions anew, and every ``bulkimport`` process a test starts the
    package and its dependencies, a quarter of a second each time, hundreds of times: they
    keep their bytecode in pytest's cache folder instead (never beside the sources). The
    workers and the child processes inherit the setting from the environment."""
    if not sys.dont_write_bytecode or config.cache is None:
        return
    prefix = str(config.cache.mkdir("pycache"))
    sys.dont_write_bytecode = False
    sys.pycache_prefix = prefix
    os.environ.pop("PYTHONDONTWRITEBYTECODE", None)
    os.environ["PYTHONPYCACHEPREFIX"] = prefix


@pytest.hookimpl(optionalhook=True)
def pytest_xdist_auto_num_workers(config: pytest.Config) -> int | None:
    """``-n auto``: half as many workers again as there are CPUs. A third of the tests' time
    is spent waiting (for a child process, for the sandbox's answers), which another worker
    fills: on 2 CPUs, 3 workers take the quick part from 5 minutes to 4 (and 4 workers are
    no faster). ``PYTEST_XDIST_AUTO_NUM_WORKERS`` decides instead when it is set."""
    if os.environ.get("PYTEST_XDIST_AUTO_NUM_WORKERS"):
        return None
    cpus = os.cpu_count() or 1
    return cpus + cpus // 2


@pytest.fixture(autouse=True)
async def _no_process_outlives_its_test() -> AsyncIterator[None]:
    """Every process the test started (``tests.helpers.start_process``) and left running, on
    a timeout or a failed assertion, is killed with its process group when the test ends."""
    yield
    await kill_leftover_processes()


@pytest.fixture
async def sandbox(tmp_path: Path) -> AsyncIterator[SandboxHandle]:
    """A sandbox with the default schema and no faults, its database in ``tmp_path``."""
    config = SandboxConfig(port=0, db_path=tmp_path / "sandbox.db")
    async with serve_sandbox(config) as handle:
        yield handle


@pytest.fixture
async def sandbox_factory(tmp_path: Path) -> AsyncIterator[SandboxFactory]:
    """Start sandboxes on demand; every one is stopped at teardown.

    ``await sandbox_factory(faults=Faults(http500_rate=0.2, seed=1))``, or pass a whole
    ``SandboxConfig`` and/or any of its fields as keywords (``schema=``, ``db_path=``...).
    Each gets a free port and its own database in ``tmp_path`` unless told otherwise.
    """
    async with AsyncExitStack() as stack:
        started = 0

        async def start(
            config: SandboxConfig | None = None,
            *,
            faults: Faults | None = None,
            **overrides: Any,
        ) -> SandboxHandle:
            nonlocal started
            started += 1
            if config is None:
                config = SandboxConfig(port=0, db_path=tmp_path / f"sandbox-{started}.db")
            if faults is not None:
                overrides["faults"] = faults
            config = replace(config, **overrides)
            return await stack.enter_async_context(serve_sandbox(config))

        yield start


def pytest_collection_modifyitems(config: pytest.Config, items: list[pytest.Item]) -> None:
    """Tests of what only POSIX has (SIGKILL's exit status, tmpfs, permission bits) are
    skipped on Windows and under its imitation (tests/windows_imitation.py), with the reason."""
    import os
    import sys

    if sys.platform != "win32" and os.environ.get("BULKIMPORT_TEST_IMITATE_WINDOWS") != "1":
        return
    for item in items:
        marker = item.get_closest_marker("posix_only")
        if marker is not None:
            why = marker.args[0] if marker.args else "POSIX by nature"
            item.add_marker(pytest.mark.skip(reason=f"not on Windows: {why}"))
