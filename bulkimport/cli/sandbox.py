"""``bulkimport sandbox``: serve the local stand-in of the vendor's Import endpoint."""

from __future__ import annotations

import asyncio
from pathlib import Path

import click

from bulkimport.campaign import default_schema, load_schema
from bulkimport.errors import ConfigError
from bulkimport.portable import on_stop_signals
from bulkimport.sandbox.addresses import listens_beyond_loopback
from bulkimport.sandbox.faults import Faults, Outage, parse_code
from bulkimport.sandbox.server import SandboxConfig, serve_sandbox

_EPILOG = """\b
Examples:
  Rehearse against a copy of your campaign, with a flaky network:
    bulkimport sandbox --schema samples/sandbox-schema.toml --db rehearsal.db \\
        --latency 0.05 --jitter 0.05 --http500-rate 0.01 --max-rps 200 --seed 7
  A server that serves 100 calls/s in 50 ms and times out like nginx after 10 s:
    bulkimport sandbox --capacity 100 --latency 0.05 --queue-timeout 10
  An invalid licence on every call, or 5 % of storage errors:
    bulkimport sandbox --answer-code 116:1
    bulkimport sandbox --answer-code 85:0.05
  PHP's ways: a BOM and notices before every answer, a 500 after 1 % of
  imports, a 3 s database lock every minute:
    bulkimport sandbox --bom-rate 1 --notice-rate 1 --http500-after-rate 0.01 \\
        --lock 3 --lock-every 60
  Down behind nginx, then switched back on while running:
    bulkimport sandbox --outage 502
    curl -X POST localhost:8765/sandbox/faults -H 'Content-Type: application/json' \\
        -d '{"outage": "off"}'

\b
Default schema: org "demo", account admin/secret, agent 1001/1001,
campaigns 1 and 2. Inspect what arrived at /sandbox/customers?model_id=1,
/sandbox/diallist?model_id=1, /sandbox/stats, /sandbox/jobs, /sandbox/arrivals;
read and change the faults at /sandbox/faults (changes: Content-Type
application/json only). See docs/sandbox.md.
"""

_RATE = click.FloatRange(0, 1)


async def _serve(config: SandboxConfig) -> None:
    stop = asyncio.Event()
    with on_stop_signals(lambda signum: stop.set()):
        async with serve_sandbox(config) as handle:
            click.echo(f"sandbox ready at {handle.url}", err=False)
            await stop.wait()
    click.echo("sandbox stopped", err=True)


@click.command("sandbox", epilog=_EPILOG)
@click.option(
    "--host",
    default="127.0.0.1",
    show_default=True,
    help="Address to listen on. Any other than loopback lets whoever reaches it read the "
    "leads and change the faults (a warning says so).",
)
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
    help="SQLite database to keep the sandbox's customers in: a new or empty file, or one the "
    "sandbox made (any other file is refused untouched). Default: a temporary one.",
)
@click.option(
    "--schema",
    "schema_path",
    type=click.Path(exists=True, dir_okay=False, path_type=Path),
    help="TOML file with the org, credentials and campaigns (see samples/sandbox-schema.toml).",
)
@click.option(
    "--latency",
    default=0.0,
    type=click.FloatRange(0),
    help="Seconds every answer takes at least (the base latency).",
)
@click.option("--jitter", default=0.0, type=click.FloatRange(0), help="Plus up to this, random.")
@click.option(
    "--capacity",
    default=0.0,
    type=click.FloatRange(0),
    help="Calls per second the server serves at its base latency; beyond, calls queue and "
    "their answers come later (0: unlimited). E.g. --capacity 100.",
)
@click.option(
    "--queue-timeout",
    default=10.0,
    show_default=True,
    type=click.FloatRange(0),
    help="Seconds after which nginx answers 504 instead of a late answer (the call is still "
    "processed); the real server's fastcgi_read_timeout is 180. 0: never.",
)
@click.option("--http500-rate", default=0.0, type=_RATE, help="Share of HTTP 500 answers.")
@click.option(
    "--backmsg85-rate",
    default=0.0,
    type=_RATE,
    help="Share of BackMsg_85 answers (the same as --answer-code 85:RATE).",
)
@click.option(
    "--answer-code",
    "answer_codes",
    multiple=True,
    metavar="CODE:RATE",
    help="Answer BackMsg_CODE to this share of calls, without processing them; repeatable. "
    "E.g. --answer-code 116:1 (licence error on every call) --answer-code 74:0.01.",
)
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
@click.option(
    "--outage",
    default=Outage.OFF.value,
    show_default=True,
    type=click.Choice([o.value for o in Outage]),
    help="Start down: drop (connections closed unanswered), 502 (nginx's Bad Gateway page), "
    "html200 (a maintenance page with status 200). Switch it over HTTP: POST "
    '/sandbox/faults {"outage": "off"}.',
)
@click.option(
    "--http500-after-rate",
    default=0.0,
    type=_RATE,
    help="Share of calls processed (the row saved) and then answered HTTP 500 (PHP died).",
)
@click.option(
    "--fatal200-after-rate",
    default=0.0,
    type=_RATE,
    help="Share of calls processed and then answered with PHP's fatal error, status 200.",
)
@click.option("--bom-rate", default=0.0, type=_RATE, help="Share of answers after a UTF-8 BOM.")
@click.option(
    "--notice-rate",
    default=0.0,
    type=_RATE,
    help="Share of answers after a PHP notice (plain text: display_errors on).",
)
@click.option(
    "--html-notice-rate",
    default=0.0,
    type=_RATE,
    help="Share of answers after a PHP notice in PHP's HTML (html_errors on).",
)
@click.option(
    "--lock",
    "lock_s",
    default=0.0,
    type=click.FloatRange(0),
    help="A database lock holds every call for this many seconds, then all are answered "
    "(every --lock-every seconds; once at start without it).",
)
@click.option(
    "--lock-every",
    "lock_every_s",
    default=0.0,
    type=click.FloatRange(0),
    help="Seconds between the starts of two --lock (the first one after that long).",
)
@click.option(
    "--https-only",
    is_flag=True,
    help="Stand in for nginx's HTTPS port: every Import call gets its 400 page "
    '"The plain HTTP request was sent to HTTPS port".',
)
@click.option("--seed", type=int, help="Random seed, to make the faults reproducible.")
@click.option(
    "--allow-private-fetch",
    is_flag=True,
    help="Let remote imports (source=http|ftp) fetch files from loopback, link-local and "
    "private addresses, which are refused by default (e.g. a file server on this machine).",
)
def sandbox_command(
    host: str,
    port: int,
    db_path: Path | None,
    schema_path: Path | None,
    latency: float,
    jitter: float,
    capacity: float,
    queue_timeout: float,
    http500_rate: float,
    backmsg85_rate: float,
    answer_codes: tuple[str, ...],
    drop_rate: float,
    hang_rate: float,
    max_rps: float,
    retry_after: int,
    outage: str,
    http500_after_rate: float,
    fatal200_after_rate: float,
    bom_rate: float,
    notice_rate: float,
    html_notice_rate: float,
    lock_s: float,
    lock_every_s: float,
    https_only: bool,
    seed: int | None,
    allow_private_fetch: bool,
) -> None:
    """Serve a local stand-in of the vendor's Import endpoint (/asterccinterfaces).

    It answers exactly as the real server does, over its own SQLite database, with optional
    faults and a capacity model. Stop it with Ctrl-C.
    """
    try:
        faults = Faults(
            latency_s=latency,
            jitter_s=jitter,
            capacity=capacity,
            queue_timeout_s=queue_timeout,
            http500_rate=http500_rate,
            backmsg85_rate=backmsg85_rate,
            code_rates=parse_answer_codes(answer_codes),
            drop_rate=drop_rate,
            hang_rate=hang_rate,
            max_rps=max_rps,
            retry_after_s=retry_after,
            outage=Outage(outage),
            http500_after_rate=http500_after_rate,
            fatal200_after_rate=fatal200_after_rate,
            bom_rate=bom_rate,
            notice_rate=notice_rate,
            html_notice_rate=html_notice_rate,
            lock_s=lock_s,
            lock_every_s=lock_every_s,
            https_only=https_only,
            seed=seed,
        )
    except ValueError as exc:
        raise ConfigError(str(exc)) from exc
    schema = load_schema(schema_path) if schema_path else default_schema()
    config = SandboxConfig(
        host=host,
        port=port,
        db_path=db_path,
        schema=schema,
        faults=faults,
        allow_private_fetch=allow_private_fetch,
    )
    if listens_beyond_loopback(host):
        click.echo(exposed_warning(host), err=True)
    try:
        asyncio.run(_serve(config))
    except OSError as exc:
        raise ConfigError(
            f"cannot listen on {host}:{port}: {exc.strerror or exc}; try --port 0"
        ) from exc


def parse_answer_codes(values: tuple[str, ...]) -> dict[str, float]:
    """``("116:1", "85:0.05")`` → ``{"116": 1.0, "85": 0.05}``; ``ConfigError`` names a bad one."""
    rates: dict[str, float] = {}
    for value in values:
        code_text, colon, rate_text = value.partition(":")
        try:
            code = parse_code(code_text.strip())
            rate = float(rate_text)
        except ValueError:
            code, rate = -1, -1.0
        if not colon or code < 0 or not 0 <= rate <= 1:
            raise ConfigError(
                f"--answer-code {value}: give CODE:RATE with a rate within 0..1, e.g. 116:0.02"
            )
        if str(code) in rates:
            raise ConfigError(f"--answer-code gives BackMsg_{code:02d} twice")
        rates[str(code)] = rate
    return rates


def exposed_warning(host: str) -> str:
    """The one line printed when the sandbox listens on an address other machines reach."""
    shown = host or "''"
    return (
        f"Warning: --host {shown} is not a loopback address: anyone who can reach this machine "
        "can read the leads the sandbox holds and change its faults"
    )
