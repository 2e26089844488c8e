"""``source=http`` and ``source=ftp``: the server fetches a CSV file and imports each line.

An import due now is fetched before answering, so that an unreachable file is answered with
89 (404 when the server said "not found") and a file that is not CSV with 86; then the answer
is the job id at once and the lines are imported in the background. A job scheduled by
``exetime`` is answered with its id straight away; a failure later is recorded on the job
(``GET /sandbox/jobs``). FTP goes through the standard library (``urllib``).

Unless the sandbox runs with ``--allow-private-fetch``, a file on a loopback, link-local,
private or otherwise non-global address is refused with 89 (``addresses.py``): the URL's IP
literal, every address its host name resolves to, and each address connected to (redirects
included) are checked; an FTP host is resolved first and the connection made to the checked
address.

Columns map to fields by the header when ``delrow`` drops a first line whose every cell names
a field of the campaign; otherwise they follow the campaign's field order.
"""

from __future__ import annotations

import asyncio
import base64
import csv
import io
import time
import urllib.error
import urllib.parse
import urllib.request
from collections import Counter
from collections.abc import Coroutine, Mapping
from datetime import datetime
from enum import StrEnum
from typing import TYPE_CHECKING, Any

import aiohttp

from bulkimport.campaign import Campaign
from bulkimport.protocol import ImportOptions, Source
from bulkimport.sandbox.addresses import (
    REFUSED_REASON,
    GuardedResolver,
    PrivateAddressError,
    check_literal,
    guarded_connector,
    is_refusal,
    resolve_checked,
)
from bulkimport.sandbox.importer import (
    ImportResult,
    check_pairs,
    failure,
    import_record,
)

if TYPE_CHECKING:
    from bulkimport.sandbox.app import Sandbox

FETCH_TIMEOUT_S = 10.0
NOW_EXETIMES = ("", "0000-00-00 00:00:00")
EXETIME_FORMAT = "%Y-%m-%d %H:%M:%S"
LINES_PER_YIELD = 200  # let other requests in while a big file is imported


class RemoteJobState(StrEnum):
    """Where a remote import job stands (the stored text)."""

    SCHEDULED = "scheduled"  # waiting for its exetime
    RUNNING = "running"  # fetched, lines being imported
    FINISHED = "finished"  # every line was imported or refused (see its codes)
    FAILED = "failed"  # the file could not be fetched or is not CSV (see its error)
    INTERRUPTED = "interrupted"  # the server stopped while it ran


class FetchError(Exception):
    """The file could not be used; ``result`` is the answer the server gives."""

    def __init__(self, result: ImportResult) -> None:
        super().__init__(result.message)
        self.result = result


def parse_exetime(value: str) -> float | None:
    """The epoch time an import is due (local time, as the server's clock); ``None``: bad."""
    if value in NOW_EXETIMES:
        return time.time()
    try:
        return datetime.strptime(value, EXETIME_FORMAT).timestamp()
    except ValueError:
        return None


def decode_csv(body: bytes) -> str:
    """The text of a CSV file (UTF-8, with or without BOM, or GB18030); 86 otherwise."""
    if b"\x00" in body:
        raise FetchError(failure(86))
    for encoding in ("utf-8-sig", "gb18030"):
        try:
            return body.decode(encoding)
        except UnicodeDecodeError:
            continue
    raise FetchError(failure(86))


async def fetch_http(url: str, user: str, password: str, *, allow_private: bool = False) -> bytes:
    # Built by hand: aiohttp's BasicAuth helper is deprecated in recent releases.
    headers = {}
    if user:
        token = base64.b64encode(f"{user}:{password}".encode()).decode("ascii")
        headers["Authorization"] = f"Basic {token}"
    timeout = aiohttp.ClientTimeout(total=FETCH_TIMEOUT_S)
    resolver: GuardedResolver | None = None
    try:
        connector: aiohttp.BaseConnector | None = None
        if not allow_private:
            check_literal(urllib.parse.urlsplit(url).hostname or "")
            resolver = GuardedResolver()
            connector = guarded_connector(resolver)
        async with (
            aiohttp.ClientSession(timeout=timeout, connector=connector) as session,
            session.get(url, headers=headers) as response,
        ):
            if response.status == 404:
                raise FetchError(failure(404))
            if response.status != 200:
                raise FetchError(failure(89, f"HTTP {response.status}"))
            if response.content_type == "text/html":
                raise FetchError(failure(86))
            return await response.read()
    except (aiohttp.ClientError, TimeoutError, ValueError, PrivateAddressError) as exc:
        if is_refusal(exc):
            raise FetchError(failure(89, REFUSED_REASON)) from exc
        raise FetchError(failure(89, type(exc).__name__)) from exc
    finally:
        if resolver is not None:
            await resolver.close()


def _pin_host(url: str, address: str) -> str:
    """``url`` with its host replaced by ``address``, so that no second lookup happens."""
    parts = urllib.parse.urlsplit(url)
    userinfo, at, _ = parts.netloc.rpartition("@")
    host = f"[{address}]" if ":" in address else address
    port = f":{parts.port}" if parts.port is not None else ""
    return parts._replace(netloc=f"{userinfo}{at}{host}{port}").geturl()


def _fetch_ftp_blocking(url: str, user: str, password: str, allow_private: bool = False) -> bytes:
    if not allow_private:
        try:
            parts = urllib.parse.urlsplit(url)
            host, port = parts.hostname or "", parts.port or 21
        except ValueError as exc:
            raise FetchError(failure(89, type(exc).__name__)) from exc
        if not host:
            raise FetchError(failure(89, "URLError"))  # urllib's "no host given"
        try:
            addresses = resolve_checked(host, port)
        except PrivateAddressError as exc:
            raise FetchError(failure(89, REFUSED_REASON)) from exc
        except (OSError, UnicodeError) as exc:
            raise FetchError(failure(89, "URLError")) from exc  # as urllib answers it
        # urllib's FTP handler speaks IPv4 only (gethostbyname): an IPv4 address if any.
        address = next((a for a in addresses if ":" not in a), addresses[0])
        url = _pin_host(url, address)
    if user:
        parts = urllib.parse.urlsplit(url)
        credentials = f"{urllib.parse.quote(user, safe='')}:{urllib.parse.quote(password, safe='')}"
        url = parts._replace(netloc=f"{credentials}@{parts.netloc}").geturl()
    try:
        with urllib.request.urlopen(url, timeout=FETCH_TIMEOUT_S) as response:
            data: bytes = response.read()
            return data
    except urllib.error.URLError as exc:
        if "550" in str(exc.reason):  # FTP "file unavailable"
            raise FetchError(failure(404)) from exc
        raise FetchError(failure(89, "URLError")) from exc
    except (OSError, ValueError) as exc:
        raise FetchError(failure(89, type(exc).__name__)) from exc


async def fetch(
    source: Source, url: str, user: str, password: str, *, allow_private: bool = False
) -> str:
    """Fetch and decode the CSV at ``url``; ``FetchError`` carries the answer on failure.

    ``allow_private``: also from loopback, link-local and private addresses."""
    scheme = urllib.parse.urlsplit(url).scheme.lower()
    wanted = ("http", "https") if source is Source.HTTP else ("ftp",)
    if scheme not in wanted:
        raise FetchError(failure(89, "URL scheme"))
    if source is Source.HTTP:
        body = await fetch_http(url, user, password, allow_private=allow_private)
    else:
        body = await asyncio.to_thread(_fetch_ftp_blocking, url, user, password, allow_private)
    return decode_csv(body)


class RemoteImports:
    """The remote import jobs of one sandbox, and the tasks that run them."""

    def __init__(self, sandbox: Sandbox) -> None:
        self.sandbox = sandbox
        self._tasks: set[asyncio.Task[None]] = set()

    async def submit(
        self, campaign: Campaign, rules: ImportOptions, source: Source, params: Mapping[str, str]
    ) -> int | ImportResult:
        """Accept one remote import: its job id, or the failure to answer."""
        url = params["context"]
        if not url:
            return failure(71)
        if not urllib.parse.urlsplit(url).path.lower().endswith(".csv"):
            return failure(86)
        run_at = parse_exetime(params["exetime"])
        if run_at is None:
            return failure(87, "exetime")
        delrow_text = params["delrow"] or "0"
        if not delrow_text.isdigit():
            return failure(87, "delrow")
        user, password = params["source_user"], params["source_pwd"]
        text: str | None = None
        if run_at <= time.time():
            try:
                text = await self._fetch(source, url, user, password)
            except FetchError as exc:
                return exc.result
        store = self.sandbox.store
        job_id = store.create_job(
            campaign.id, source.value, url, run_at, int(delrow_text), rules.to_params()
        )
        self._spawn(self._run(job_id, campaign, rules, source, url, user, password, text))
        return job_id

    async def _fetch(self, source: Source, url: str, user: str, password: str) -> str:
        allow_private = self.sandbox.allow_private_fetch
        return await fetch(source, url, user, password, allow_private=allow_private)

    def _spawn(self, coro: Coroutine[Any, Any, None]) -> None:
        task = asyncio.get_running_loop().create_task(coro)
        self._tasks.add(task)
        task.add_done_callback(self._tasks.discard)

    def resume(self) -> None:
        """After a (re)start: reschedule waiting jobs; mark ones cut off while running."""
        store = self.sandbox.store
        for job in store.jobs((RemoteJobState.SCHEDULED, RemoteJobState.RUNNING)):
            if job["state"] == RemoteJobState.RUNNING:
                store.update_job(job["id"], RemoteJobState.INTERRUPTED, finished=True)
                continue
            campaign = self.sandbox.schema.campaign(job["model_id"])
            if campaign is None:
                store.update_job(job["id"], RemoteJobState.FAILED, error="BackMsg_73")
                continue
            # Credentials for the file are not stored: a resumed job fetches anonymously.
            self._spawn(
                self._run(
                    job["id"],
                    campaign,
                    ImportOptions.from_params(job["params"]),
                    Source(job["source"]),
                    job["url"],
                    "",
                    "",
                    None,
                    run_at=job["run_at"],
                )
            )

    async def stop(self) -> None:
        """Cancel running jobs (they are marked interrupted) and wait for them."""
        tasks = list(self._tasks)
        for task in tasks:
            task.cancel()
        await asyncio.gather(*tasks, return_exceptions=True)

    async def _run(
        self,
        job_id: int,
        campaign: Campaign,
        rules: ImportOptions,
        source: Source,
        url: str,
        user: str,
        password: str,
        text: str | None,
        *,
        run_at: float | None = None,
    ) -> None:
        store = self.sandbox.store
        try:
            if text is None:
                if run_at is None:
                    job = next(j for j in store.jobs() if j["id"] == job_id)
                    run_at = float(job["run_at"])
                await asyncio.sleep(max(0.0, run_at - time.time()))
                try:
                    text = await self._fetch(source, url, user, password)
                except FetchError as exc:
                    store.update_job(
                        job_id, RemoteJobState.FAILED, error=exc.result.message, finished=True
                    )
                    return
            delrow = next(j["delrow"] for j in store.jobs() if j["id"] == job_id)
            store.update_job(job_id, RemoteJobState.RUNNING)
            lines, codes = await self._import_lines(campaign, rules, text, int(delrow))
            store.update_job(
                job_id, RemoteJobState.FINISHED, lines=lines, codes=codes, finished=True
            )
        except asyncio.CancelledError:
            if store.is_open:
                store.update_job(job_id, RemoteJobState.INTERRUPTED, finished=True)
            raise

    async def _import_lines(
        self, campaign: Campaign, rules: ImportOptions, text: str, delrow: int
    ) -> tuple[int, dict[str, int]]:
        records = [r for r in csv.reader(io.StringIO(text, newline="")) if any(r)]
        dropped, records = records[:delrow], records[delrow:]
        names: tuple[str, ...] = campaign.field_names
        if dropped and all(campaign.resolve(cell.strip()) for cell in dropped[0]):
            names = tuple(cell.strip() for cell in dropped[0])
        codes: Counter[str] = Counter()
        for index, cells in enumerate(records, start=1):
            if len(cells) > len(names):
                result: ImportResult = failure(74, "too many columns")
            else:
                checked = check_pairs(campaign, list(zip(names, cells, strict=False)))
                if isinstance(checked, ImportResult):
                    result = checked
                else:
                    result = import_record(self.sandbox.store, campaign, checked, rules)
            codes[f"BackMsg_{result.codes[0]:02d}"] += 1
            if index % LINES_PER_YIELD == 0:
                await asyncio.sleep(0)
        return len(records), dict(codes)
