"""``bulkimport sandbox``: serve the local stand-in of the vendor's Import endpoint."""

from __future__ import annotations

import asyncio
import signal
from pathlib import Path

import click

from bulkimport.campaign import default_schema, load_schema
from bulkimport.errors import BulkImportError
from bulkimport.sandbox.faults import Faults
from bulkimport.sandbox.server import SandboxConfig, serve_sandbox

_EPILOG = """\b
Example: rehearse against a copy of your campaign, with a flaky network:
    bulkimport sandbox --schema samples/sandbox-schema.toml --db rehearsal.db \\
        --latency 0.05 --jitter 0.05 --http500-rate 0.01 --max-rps 200 --seed 7

\b
Default schema: org "demo", account admin/secret, agent 1001/1001,
campaigns 1 and 2. Inspect what arrived at /sandbox/customers?model_id=1,
/sandbox/diallist?model_id=1, /sandbox/stats, /sandbox/jobs, /sandbox/arrivals.
See docs/sandbox.md.
"""

_RATE = click.FloatRange(0, 1)


async def _serve(config: SandboxConfig) -> None:
    stop = asyncio.Event()
    loop = asyncio.get_running_loop()
    for signum in (signal.SIGINT, signal.SIGTERM):
        loop.add_signal_handler(signum, stop.set)
    try:
        async with serve_sandbox(config) as handle:
            click.echo(f"sandbox ready at {handle.url}", err=False)
            await stop.wait()
    finally:
        for signum in (signal.SIGINT, signal.SIGTERM):
            loop.remove_signal_handler(signum)
    click.echo("sandbox stopped", err=True)


@click.command("sandbox", epilog=_EPILOG)
@click.option("--host", default="127.0.0.1", show_default=True, help="Address to listen on.")
@click.option(
    "--port",
    default=8765,
    show_default=True,
    type=click.IntRange(0, 65535),
    help="Port to listen on; 0 picks a free one (printed on start).",
)
@click.option(
    "--db",
    "db_path",
    type=click.Path(dir_okay=False, path_type=Path),
    help="SQLite database to keep the sandbox's customers in. Default: a temporary one.",
)
@click.option(
    "--schema",
    "schema_path",
    type=click.Path(exists=True, dir_okay=False, path_type=Path),
    help="TOML file with the org, credentials and campaigns (see samples/sandbox-schema.toml).",
)
@click.option("--latency", default=0.0, type=click.FloatRange(0), help="Seconds added to answers.")
@click.option("--jitter", default=0.0, type=click.FloatRange(0), help="Plus up to this, random.")
@click.option("--http500-rate", default=0.0, type=_RATE, help="Share of HTTP 500 answers.")
@click.option("--backmsg85-rate", default=0.0, type=_RATE, help="Share of BackMsg_85 answers.")
@click.option("--drop-rate", default=0.0, type=_RATE, help="Share of connections dropped.")
@click.option("--hang-rate", default=0.0, type=_RATE, help="Share of requests never answered.")
@click.option(
    "--max-rps",
    default=0.0,
    type=click.FloatRange(0),
    help="Requests per second above which HTTP 429 is answered (0: no ceiling).",
)
@click.option(
    "--retry-after",
    default=1,
    show_default=True,
    type=click.IntRange(0),
    help="Retry-After seconds sent with a 429.",
)
@click.option("--seed", type=int, help="Random seed, to make the faults reproducible.")
def sandbox_command(
    host: str,
    port: int,
    db_path: Path | None,
    schema_path: Path | None,
    latency: float,
    jitter: float,
    http500_rate: float,
    backmsg85_rate: float,
    drop_rate: float,
    hang_rate: float,
    max_rps: float,
    retry_after: int,
    seed: int | None,
) -> None:
    """Serve a local stand-in of the vendor's Import endpoint (/asterccinterfaces).

    It answers exactly as the real server does, over its own SQLite database, with optional
    faults. Stop it with Ctrl-C.
    """
    try:
        faults = Faults(
            latency_s=latency,
            jitter_s=jitter,
            http500_rate=http500_rate,
            backmsg85_rate=backmsg85_rate,
            drop_rate=drop_rate,
            hang_rate=hang_rate,
            max_rps=max_rps,
            retry_after_s=retry_after,
            seed=seed,
        )
    except ValueError as exc:
        raise click.UsageError(str(exc)) from exc
    try:
        schema = load_schema(schema_path) if schema_path else default_schema()
    except BulkImportError as exc:
        raise click.ClickException(str(exc)) from exc
    config = SandboxConfig(host=host, port=port, db_path=db_path, schema=schema, faults=faults)
    try:
        asyncio.run(_serve(config))
    except OSError as exc:
        raise click.ClickException(
            f"cannot listen on {host}:{port}: {exc.strerror or exc}; try --port 0"
        ) from exc
