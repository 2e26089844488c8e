"""Running a sandbox: ``SandboxConfig``, the ``SandboxHandle`` and ``serve_sandbox``."""

from __future__ import annotations

import shutil
import tempfile
from collections.abc import AsyncIterator
from contextlib import asynccontextmanager
from dataclasses import dataclass, field, replace
from pathlib import Path
from typing import Any

from aiohttp import web

from bulkimport.campaign import Schema, default_schema
from bulkimport.protocol import ENDPOINT_PATH
from bulkimport.sandbox.app import PARSER_LIMIT_BYTES, Sandbox, build_app
from bulkimport.sandbox.faults import Faults
from bulkimport.sandbox.store import Store

# In-flight requests get this long to finish when the server stops (hangs end at once, and
# the calls that nginx answered 504 for are processed before it).
SHUTDOWN_TIMEOUT_S = 2.0


@dataclass(frozen=True)
class SandboxConfig:
    """How to run a sandbox. ``port=0`` picks a free port; ``db_path=None`` a temporary file.

    ``allow_private_fetch``: remote imports (``source=http|ftp``) may fetch from loopback,
    link-local and private addresses, which are refused by default.
    """

    host: str = "127.0.0.1"
    port: int = 8765
    db_path: Path | None = None
    schema: Schema = field(default_factory=default_schema)
    faults: Faults = field(default_factory=Faults)
    allow_private_fetch: bool = False


class SandboxHandle:
    """A sandbox server in the current event loop; ``stop()`` and ``start()`` again at will.

    A restart keeps the port (once one was picked), the database, the counters and the
    faults as last set (the capacity backlog starts empty, as a restarted server's).
    """

    def __init__(self, config: SandboxConfig, db_path: Path) -> None:
        self.config = config
        self.db_path = db_path
        self.port = config.port
        self.store = Store(db_path)
        self.sandbox: Sandbox | None = None
        self._faults = config.faults
        self._runner: web.AppRunner | None = None
        self._stats_holder: Sandbox | None = None

    @property
    def base_url(self) -> str:
        host = self.config.host
        if ":" in host:
            host = f"[{host}]"
        return f"http://{host}:{self.port}"

    @property
    def url(self) -> str:
        """The Import endpoint, e.g. ``http://127.0.0.1:8765/asterccinterfaces``."""
        return self.base_url + ENDPOINT_PATH

    @property
    def running(self) -> bool:
        return self._runner is not None

    @property
    def faults(self) -> Faults:
        """The faults in effect (also those set over HTTP)."""
        return self.sandbox.faults if self.sandbox is not None else self._faults

    def set_faults(self, faults: Faults) -> None:
        """Replace the faults, now and after a restart (the capacity backlog carries over)."""
        self._faults = faults
        if self.sandbox is not None:
            self.sandbox.set_faults(faults)

    def update_faults(self, **changes: Any) -> Faults:
        """Change some faults and keep the others, as ``POST /sandbox/faults`` does:
        ``handle.update_faults(capacity=50, outage="502")``."""
        faults = replace(self.faults, **changes)
        self.set_faults(faults)
        return faults

    async def start(self) -> None:
        """Open the database and listen (on the same port as before after a ``stop()``)."""
        if self._runner is not None:
            return
        created = self.store.open()
        sandbox = Sandbox(
            self.config.schema,
            self.store,
            self._faults,
            allow_private_fetch=self.config.allow_private_fetch,
        )
        if self._stats_holder is not None:
            sandbox.stats = self._stats_holder.stats
        if created:
            _seed_customers(sandbox)
        runner = web.AppRunner(
            build_app(sandbox),
            access_log=None,
            shutdown_timeout=SHUTDOWN_TIMEOUT_S,
            # aiohttp stops at 8,190 bytes; nginx's limits are nginx_limits'.
            max_line_size=PARSER_LIMIT_BYTES,
            max_field_size=PARSER_LIMIT_BYTES,
        )
        await runner.setup()
        try:
            site = web.TCPSite(runner, self.config.host, self.port)
            await site.start()
        except BaseException:
            await runner.cleanup()
            self.store.close()
            raise
        if self.port == 0:
            # Keep the picked port, so that a restart comes back where clients expect it.
            sockets = getattr(site._server, "sockets", None) or []
            self.port = int(sockets[0].getsockname()[1])
        self._runner = runner
        self.sandbox = sandbox
        self._stats_holder = sandbox
        sandbox.remote.resume()

    async def stop(self) -> None:
        """Stop listening, end hung requests and running jobs, commit and close the database."""
        runner, sandbox = self._runner, self.sandbox
        if runner is None or sandbox is None:
            return
        self._runner = None
        self.sandbox = None
        self._faults = sandbox.faults
        await sandbox.finish()
        await sandbox.remote.stop()
        await runner.cleanup()
        self.store.close()


def _seed_customers(sandbox: Sandbox) -> None:
    for seed in sandbox.schema.customers:
        campaign = sandbox.schema.campaign(seed.campaign)
        if campaign is None:
            continue
        fields = {campaign.resolve(k) or k: v for k, v in seed.fields.items()}
        key = fields.get(campaign.key_field, "")
        if key and sandbox.store.find_customer(campaign.table, key) is None:
            package = campaign.id if seed.package is None else seed.package
            sandbox.store.insert_customer(
                campaign.table, key, package, fields, status=seed.status, agent=seed.agent
            )
    sandbox.store.commit()


@asynccontextmanager
async def serve_sandbox(config: SandboxConfig | None = None) -> AsyncIterator[SandboxHandle]:
    """Start a sandbox in the running event loop; stop it (and remove a temporary db) at exit.

    ::

        async with serve_sandbox(SandboxConfig(port=0)) as sandbox:
            print(sandbox.url)
    """
    config = config or SandboxConfig()
    temp_dir: str | None = None
    db_path = config.db_path
    if db_path is None:
        temp_dir = tempfile.mkdtemp(prefix="bulkimport-sandbox-")
        db_path = Path(temp_dir) / "sandbox.db"
    handle = SandboxHandle(config, Path(db_path))
    try:
        await handle.start()
        yield handle
    finally:
        await handle.stop()
        if temp_dir is not None:
            shutil.rmtree(temp_dir, ignore_errors=True)
