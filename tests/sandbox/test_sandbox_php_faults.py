"""The faults of a PHP server behind nginx, seen over real HTTP: bytes before the answer, PHP
dying after it saved the row, a database lock, nginx's HTTPS port and its 32 KiB lines."""

from __future__ import annotations

import asyncio
from collections.abc import Awaitable, Callable
from urllib.parse import urlencode

import aiohttp
import pytest
from sandbox_helpers import Client, params

from bulkimport.protocol import parse_answer
from bulkimport.sandbox import Faults, SandboxHandle
from bulkimport.sandbox.faults import BOM, PHP_HTML_NOTICE, PHP_NOTICE, FaultPlan, LockSchedule
from bulkimport.sandbox.pages import PHP_FATAL_PAGE

Factory = Callable[..., Awaitable[SandboxHandle]]
HTTPS_PORT_PAGE = (
    b"<html>\r\n<head><title>400 The plain HTTP request was sent to HTTPS port</title></head>\r\n"
    b"<body>\r\n<center><h1>400 Bad Request</h1></center>\r\n"
    b"<center>The plain HTTP request was sent to HTTPS port</center>\r\n"
    b"<hr><center>nginx</center>\r\n</body>\r\n</html>\r\n"
)


async def raw(client: Client, context: str, method: str = "POST") -> tuple[int, bytes]:
    """One call; the status and the body's bytes as sent."""
    pairs = params(context)
    url = client.sandbox.url
    request = (
        client.session.post(url, data=pairs)
        if method == "POST"
        else client.session.get(url, params=pairs)
    )
    async with request as response:
        return response.status, await response.read()


async def start(factory: Factory, session: aiohttp.ClientSession, **faults: object) -> Client:
    return Client(session, await factory(faults=Faults(**faults)))  # type: ignore[arg-type]


@pytest.mark.parametrize(
    ("faults", "before"),
    [
        ({"bom_rate": 1}, BOM),
        ({"notice_rate": 1}, PHP_NOTICE),
        ({"html_notice_rate": 1}, PHP_HTML_NOTICE),
        (
            {"bom_rate": 1, "notice_rate": 1, "html_notice_rate": 1},
            BOM + PHP_NOTICE + PHP_HTML_NOTICE,
        ),
    ],
)
async def test_bytes_before_every_answer_and_the_row_imported(
    sandbox_factory: Factory, session: aiohttp.ClientSession, faults: dict[str, float], before: str
) -> None:
    client = await start(sandbox_factory, session, **faults)
    status, body = await raw(client, "phone1=13900000001")
    assert status == 200
    assert body == (before + "|Retuen|1|Retuen|BackMsg_84").encode()
    assert [c["key"] for c in await client.customers()] == ["13900000001"]
    # An answer code injected instead of the answer comes after them too.
    await client.post_json("/sandbox/faults", {"code_rates": {"85": 1}})
    assert (await raw(client, "phone1=2"))[1] == (before + "|Retuen|2|Retuen|BackMsg_85").encode()


def test_the_notices_are_in_phps_own_formats() -> None:
    assert PHP_NOTICE.startswith("\nNotice: ") and PHP_NOTICE.endswith(" on line 41\n")
    assert PHP_HTML_NOTICE.startswith("<br />\n<b>Notice</b>:  ")
    assert PHP_HTML_NOTICE.endswith(" on line <b>41</b><br />\n")


async def test_bytes_before_a_share_of_answers_are_reproducible(
    sandbox_factory: Factory, session: aiohttp.ClientSession
) -> None:
    seen: list[list[bool]] = []
    for _ in range(2):
        client = await start(sandbox_factory, session, bom_rate=0.5, seed=11)
        bodies = [(await raw(client, f"phone1={n}"))[1] for n in range(30)]
        assert all(body.lstrip(BOM.encode()).startswith(b"|Retuen|1|") for body in bodies)
        seen.append([body.startswith(BOM.encode()) for body in bodies])
        assert len(await client.customers()) == 30
    assert seen[0] == seen[1]
    assert 5 <= sum(seen[0]) <= 25


@pytest.mark.parametrize(
    ("faults", "status", "body", "code"),
    [
        ({"http500_after_rate": 1}, 500, b"", "http500-after BackMsg_84"),
        ({"fatal200_after_rate": 1}, 200, PHP_FATAL_PAGE, "fatal200-after BackMsg_84"),
    ],
)
async def test_php_dying_after_the_import_answers_no_answer_but_the_row_is_stored(
    sandbox_factory: Factory,
    session: aiohttp.ClientSession,
    faults: dict[str, float],
    status: int,
    body: bytes,
    code: str,
) -> None:
    client = await start(sandbox_factory, session, **faults)
    answered = await raw(client, "phone1=13900000002")
    assert answered == (status, body)
    assert parse_answer(body.decode()) is None
    assert [c["key"] for c in await client.customers()] == ["13900000002"]
    stats = await client.get_json("/sandbox/stats")
    assert stats["by_code"] == {code: 1}
    arrivals = await client.get_json("/sandbox/arrivals")
    assert [(a[1], a[4]) for a in arrivals] == [(status, True)]


def test_a_lock_holds_every_call_that_arrives_while_it_is_held_until_it_is_released() -> None:
    lock = LockSchedule(lock_s=2, every_s=10, since=100)
    waits = {t: lock.wait_s(100 + t) for t in (0, 5, 9.99, 10, 11.5, 12, 15, 20.5, 31)}
    assert waits == pytest.approx(
        {0: 0, 5: 0, 9.99: 0, 10: 2, 11.5: 0.5, 12: 0, 15: 0, 20.5: 1.5, 31: 1}
    )
    once = LockSchedule(lock_s=12, every_s=0, since=0)
    assert [once.wait_s(t) for t in (0, 3, 12, 50)] == [12, 9, 0, 0]


def test_a_lock_longer_than_nginxs_timeout_gets_504_and_the_call_is_still_processed() -> None:
    plan = FaultPlan(Faults(lock_s=12, queue_timeout_s=10), now=0.0)
    verdict = plan.decide(1.0)
    assert verdict.wait_s == pytest.approx(11) and verdict.timed_out
    plan.update(Faults(lock_s=3, lock_every_s=60, queue_timeout_s=180), now=100.0)
    assert plan.decide(130.0).wait_s == 0
    assert plan.decide(161.0).wait_s == pytest.approx(2) and not plan.decide(161.0).timed_out


async def test_calls_during_a_lock_are_all_answered_once_it_is_released(
    sandbox_factory: Factory, session: aiohttp.ClientSession
) -> None:
    client = await start(sandbox_factory, session)
    await client.post_json("/sandbox/faults", {"lock_s": 0.5})
    answers = await asyncio.gather(*(raw(client, f"phone1={n}") for n in range(8)))
    assert {status for status, _ in answers} == {200}
    assert len(await client.customers()) == 8
    # The server measured the wait: every call was held (most of) the lock.
    latencies = [a[3] for a in await client.get_json("/sandbox/arrivals")]
    assert min(latencies) > 0.2


@pytest.mark.parametrize("method", ["GET", "POST"])
async def test_an_https_only_port_answers_nginxs_400_page_and_nothing_is_stored(
    sandbox_factory: Factory, session: aiohttp.ClientSession, method: str
) -> None:
    client = await start(sandbox_factory, session, https_only=True)
    pairs = params("phone1=1")
    url = client.sandbox.url
    request = session.post(url, data=pairs) if method == "POST" else session.get(url, params=pairs)
    async with request as response:
        assert response.status == 400
        assert await response.read() == HTTPS_PORT_PAGE
        assert response.headers["Server"] == "nginx"
        assert response.headers["Connection"] == "close"
    assert await client.customers() == []
    await client.post_json("/sandbox/faults", {"https_only": False})
    assert await client.message("phone1=1") == "BackMsg_84"


def _memo_context(request_line_bytes: int, client: Client) -> str:
    """A record whose GET request line is ``request_line_bytes`` long, its CRLF included."""
    probe = params("phone1=1||memo=")
    path = client.sandbox.url.split("/", 3)[3]
    base = len(f"GET /{path}?{urlencode(probe)} HTTP/1.1\r\n")
    return "phone1=1||memo=" + "x" * (request_line_bytes - base)


@pytest.mark.parametrize(("length", "status"), [(9_000, 200), (32_768, 200), (32_769, 414)])
async def test_request_lines_up_to_nginxs_32_kib_are_taken_and_414_beyond(
    client: Client, length: int, status: int
) -> None:
    context = _memo_context(length, client)
    got, body = await raw(client, context, method="GET")
    assert got == status
    if status == 200:
        assert body == b"|Retuen|1|Retuen|BackMsg_84"
        assert len(await client.customers()) == 1
    else:
        assert b"<title>414 Request-URI Too Large</title>" in body
        assert await client.customers() == []


@pytest.mark.parametrize(("length", "status"), [(20_000, 200), (40_000, 400)])
async def test_a_header_line_beyond_32_kib_gets_nginxs_400(
    client: Client, length: int, status: int
) -> None:
    headers = {"Cookie": "c=" + "x" * length}
    async with client.session.get(
        client.sandbox.base_url + "/sandbox/faults", headers=headers
    ) as r:
        assert r.status == status
        if status == 400:
            assert b"<title>400 Request Header Or Cookie Too Large</title>" in await r.read()
