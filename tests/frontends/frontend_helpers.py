"""Helpers for tests behind nginx: Import calls built by hand, raw requests, HTML pages, and
the options, files and counts of a job sent through nginx."""

from __future__ import annotations

import asyncio
import contextlib
import re
import time
from collections import Counter
from collections.abc import Callable
from pathlib import Path
from typing import Any

from bulkimport.sandbox import SandboxHandle
from tests.frontends.nginx import NginxHandle
from tests.helpers import HEADER, good_rows, query, stats, write_csv

# The sandbox's default account and campaign.
ACCOUNT = {"orgidentity": "demo", "user": "admin", "password": "secret", "model_id": "1"}


def import_params(context: str, **override: str) -> list[tuple[str, str]]:
    """The 22 parameters of one ``source=data`` Import call, in the documented order, for the
    sandbox's default account (built here, not by the client: this is the wire format)."""
    values = {
        "EVENT": "Import",
        "orgidentity": ACCOUNT["orgidentity"],
        "usertype": "account",
        "user": ACCOUNT["user"],
        "pwdtype": "plaintext",
        "password": ACCOUNT["password"],
        "modeltype": "Campaign",
        "model_id": ACCOUNT["model_id"],
        "source": "data",
        "context": context,
        "source_user": "",
        "source_pwd": "",
        "exetime": "",
        "delrow": "",
        "phone_field": "",
        "priority_field": "",
        "dialtime_field": "",
        "emptyagent": "no",
        "resetstatus": "no",
        "dupway": "skip",
        "dupdiallist": "ignoreDuplicate",
        "changepackage": "skip",
    }
    unknown = set(override) - set(values)
    assert not unknown, unknown
    values.update(override)
    return list(values.items())


def lead(n: int, **more: str) -> str:
    """The ``context`` of one valid lead with a distinct phone number."""
    fields = {"name": f"Lead {n}", "phone1": f"139{n:08d}", **more}
    return "||".join(f"{k}={v}" for k, v in fields.items())


def html_title(body: str) -> str | None:
    """The ``<title>`` of an HTML page, or None when the body is not one."""
    found = re.search(r"<title>(.*?)</title>", body, re.IGNORECASE | re.DOTALL)
    return found.group(1).strip() if found else None


async def raw_request(port: int, head: bytes, body: bytes = b"") -> tuple[int, str]:
    """Send bytes as they are (a request line no client library would build) and return
    the status and body of the answer. Reads the body by its Content-Length, not to the
    end of the connection: after refusing a request nginx waits for the rest of it."""
    reader, writer = await asyncio.open_connection("127.0.0.1", port)
    try:
        writer.write(head + body)
        await writer.drain()
        answer_head = await asyncio.wait_for(reader.readuntil(b"\r\n\r\n"), 10)
        lines = answer_head.decode("latin-1").split("\r\n")
        headers = dict(line.split(": ", 1) for line in lines[1:] if ": " in line)
        length = int(headers.get("Content-Length", "0"))
        answer_body = await asyncio.wait_for(reader.readexactly(length), 10)
    finally:
        writer.close()
        with contextlib.suppress(ConnectionError):
            await writer.wait_closed()
    return int(lines[0].split(" ", 2)[1]), answer_body.decode(errors="replace")


def request_head(line: str, *headers: str) -> bytes:
    """A request's head: ``line``, a Host, ``headers``, ``Connection: close``."""
    lines = [line, "Host: 127.0.0.1", *headers, "Connection: close", "", ""]
    return "\r\n".join(lines).encode()


async def wait_stats(
    sandbox: SandboxHandle, until: Callable[[dict[str, Any]], bool], timeout_s: float = 5
) -> dict[str, Any]:
    """The sandbox's ``/sandbox/stats`` once ``until(stats)`` holds."""
    deadline = time.monotonic() + timeout_s
    while True:
        current = await stats(sandbox)
        if until(current):
            return current
        if time.monotonic() > deadline:
            raise AssertionError(f"sandbox stats never matched: {current}")
        await asyncio.sleep(0.05)


# --- a job sent through nginx ---------------------------------------------------------------


def through(front: NginxHandle | str, *more: str) -> list[str]:
    """The options that send through ``front`` (or to a URL) as the sandbox's default account."""
    url = front if isinstance(front, str) else front.url
    return ["--url", url, "--org", "demo", "--user", "admin", "--campaign", "1", *more]


def leads(work: Path, rows: int, *, start: int = 0, name: str = "leads.csv") -> Path:
    work.mkdir(parents=True, exist_ok=True)
    return write_csv(work / name, [HEADER, *good_rows(rows, start)])


def states_and_attempts(db: Path) -> dict[tuple[str, int], int]:
    rows = query(db, "SELECT state, attempts, COUNT(*) FROM rows GROUP BY 1, 2")
    return {(state, attempts): n for state, attempts, n in rows}


def statuses(front: NginxHandle) -> Counter[int]:
    return Counter(entry.status for entry in front.access_log())
