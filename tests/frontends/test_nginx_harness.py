"""The nginx harness itself: a real sandbox behind a real nginx answers as the real server's
nginx would, for each option of ``NginxFront``. The statuses and page titles asserted here are
the ones Debian's nginx 1.22 answers; the tests of the client rely on them."""

from __future__ import annotations

import asyncio
import time
from collections.abc import AsyncIterator
from pathlib import Path

import aiohttp
import pytest

from bulkimport.sandbox import Faults, SandboxHandle
from tests.conftest import SandboxFactory
from tests.frontends import nginx as nginx_module
from tests.frontends.conftest import NginxFactory
from tests.frontends.frontend_helpers import (
    html_title,
    import_params,
    lead,
    raw_request,
    request_head,
    wait_stats,
)
from tests.frontends.nginx import (
    INSTALL_ERROR_ENV,
    MAINTENANCE_HTML,
    NginxError,
    NginxFront,
    NginxHandle,
    RateLimit,
    TlsFiles,
    find_nginx,
    missing_reason,
    render_config,
    self_signed_certificate,
    serve_nginx,
)
from tests.helpers import customers, stats

OK = "|Retuen|1|Retuen|BackMsg_84"


@pytest.fixture
async def session() -> AsyncIterator[aiohttp.ClientSession]:
    async with aiohttp.ClientSession() as http:
        yield http


async def post(session: aiohttp.ClientSession, url: str, n: int) -> tuple[int, str]:
    async with session.post(url, data=import_params(lead(n))) as response:
        return response.status, await response.text()


async def burst(
    session: aiohttp.ClientSession, url: str, count: int
) -> list[tuple[int, str | None, str]]:
    """``count`` POSTs at once: ``(status, Retry-After, body)`` of each."""

    async def one(n: int) -> tuple[int, str | None, str]:
        async with session.post(url, data=import_params(lead(n))) as response:
            return response.status, response.headers.get("Retry-After"), await response.text()

    return await asyncio.gather(*(one(n) for n in range(count)))


async def test_an_import_call_passes_through_and_post_keeps_the_password_out_of_the_log(
    sandbox: SandboxHandle, nginx: NginxHandle, session: aiohttp.ClientSession
) -> None:
    async with session.get(nginx.url, params=import_params(lead(1))) as response:
        assert (response.status, await response.text()) == (200, OK)
    assert await post(session, nginx.url, 2) == (200, OK)

    assert {c["fields"]["phone1"] for c in await customers(sandbox)} >= {
        "13900000001",
        "13900000002",
    }
    get, posted = await nginx.wait_access_log(2)
    assert (get.method, get.status, get.upstream_status) == ("GET", 200, "200")
    assert (posted.method, posted.status, posted.upstream_status) == ("POST", 200, "200")
    assert "password=secret" in get.request
    assert posted.request == "POST /asterccinterfaces HTTP/1.1"
    get_line, post_line = nginx.access_log_path.read_text().splitlines()
    assert "secret" in get_line
    assert "secret" not in post_line
    assert (await stats(sandbox))["requests"] == 2


@pytest.mark.parametrize(
    ("status", "retry_after_s", "title"),
    [
        (503, None, "503 Service Temporarily Unavailable"),
        (503, 1, "503 Service Temporarily Unavailable"),
        (429, None, "429 Too Many Requests"),
        (429, 2, "429 Too Many Requests"),
    ],
)
async def test_limit_req_answers_a_burst_with_its_own_page(
    sandbox: SandboxHandle,
    nginx_factory: NginxFactory,
    session: aiohttp.ClientSession,
    status: int,
    retry_after_s: int | None,
    title: str,
) -> None:
    # One a minute: however slowly this machine sends the 12, the first is the only one
    # let through (at 20 a second, 12 spread over 0.6 s all passed).
    limit = RateLimit(1 / 60, status=status, retry_after_s=retry_after_s)
    front = await nginx_factory(sandbox, NginxFront(rate_limit=limit))
    answers = await burst(session, front.url, 12)

    passed = [a for a in answers if a[0] == 200]
    limited = [a for a in answers if a[0] != 200]
    assert (len(passed), len(limited)) == (1, 11)
    assert all(body == OK for _, _, body in passed)
    expected_retry = None if retry_after_s is None else str(retry_after_s)
    assert {(s, r, html_title(body)) for s, r, body in limited} == {(status, expected_retry, title)}
    # The limited ones never reached the sandbox; the log says which was which.
    assert (await stats(sandbox))["requests"] == len(passed)
    entries = await front.wait_access_log(12)
    assert sorted(e.limit_req for e in entries) == sorted(
        ["PASSED"] * len(passed) + ["REJECTED"] * len(limited)
    )
    assert not any(e.forwarded for e in entries if e.limit_req == "REJECTED")


async def test_limit_req_burst_nodelay_lets_the_burst_through_at_once(
    sandbox: SandboxHandle, nginx_factory: NginxFactory, session: aiohttp.ClientSession
) -> None:
    limit = RateLimit(1 / 60, burst=3, nodelay=True)
    front = await nginx_factory(sandbox, NginxFront(rate_limit=limit))
    answers = await burst(session, front.url, 8)
    # One a minute, 3 more in the burst: the first 4 at once, the others 503 (all within the
    # minute, however slowly this machine sends them).
    assert sorted(status for status, _, _ in answers) == [200] * 4 + [503] * 4


async def test_limit_req_burst_without_nodelay_queues_the_burst(
    sandbox: SandboxHandle, nginx_factory: NginxFactory, session: aiohttp.ClientSession
) -> None:
    # Two a second: the three are queued unless this machine sends them half a second
    # apart each (at ten a second, 100 ms apart was enough to queue none).
    front = await nginx_factory(sandbox, NginxFront(rate_limit=RateLimit(2, burst=2)))
    started = time.monotonic()
    answers = await burst(session, front.url, 3)
    elapsed_s = time.monotonic() - started
    assert [status for status, _, _ in answers] == [200] * 3
    assert elapsed_s >= 0.9  # the third waited for its slot, 500 ms after the second
    verdicts = {e.limit_req for e in await front.wait_access_log(3)}
    assert "DELAYED" in verdicts
    assert "REJECTED" not in verdicts


@pytest.mark.serial  # how long the 504 takes, at most
async def test_a_slow_upstream_gets_a_504_page_and_imports_the_row_all_the_same(
    sandbox_factory: SandboxFactory, nginx_factory: NginxFactory, session: aiohttp.ClientSession
) -> None:
    slow = await sandbox_factory(faults=Faults(latency_s=2))
    front = await nginx_factory(slow, NginxFront(read_timeout_s=1))
    started = time.monotonic()
    status, body = await post(session, front.url, 1)
    elapsed_s = time.monotonic() - started

    assert (status, html_title(body)) == (504, "504 Gateway Time-out")
    assert 0.9 <= elapsed_s < 1.9
    # What a 504 means for the client: the server goes on and may import the row anyway.
    done = await wait_stats(slow, lambda s: s["requests"] == 1)
    assert done["by_code"] == {"BackMsg_84": 1}
    assert [c["fields"]["phone1"] for c in await customers(slow)] == ["13900000001"]
    (entry,) = await front.wait_access_log(1)
    assert (entry.status, entry.upstream_status) == (504, "504")


async def test_an_upstream_that_is_down_gets_a_502_page_until_it_is_back(
    sandbox: SandboxHandle, nginx: NginxHandle, session: aiohttp.ClientSession
) -> None:
    await sandbox.stop()
    status, body = await post(session, nginx.url, 1)
    assert (status, html_title(body)) == (502, "502 Bad Gateway")
    assert "connect() failed (111: Connection refused)" in nginx.error_log()

    await sandbox.start()
    assert await post(session, nginx.url, 1) == (200, OK)
    down, up = await nginx.wait_access_log(2)
    assert (down.status, down.upstream_status, down.forwarded) == (502, "502", True)
    assert (up.status, up.upstream_status) == (200, "200")


async def test_the_maintenance_page_answers_upstream_failures_with_status_200(
    sandbox_factory: SandboxFactory, nginx_factory: NginxFactory, session: aiohttp.ClientSession
) -> None:
    slow = await sandbox_factory(faults=Faults(latency_s=0.6))
    front = await nginx_factory(
        slow, NginxFront(read_timeout_s=0.2, maintenance_html=MAINTENANCE_HTML)
    )
    async with session.post(front.url, data=import_params(lead(1))) as response:
        timed_out = (response.status, response.content_type, html_title(await response.text()))
    await slow.stop()
    async with session.get(front.url, params=import_params(lead(2))) as response:
        down = (response.status, response.content_type, html_title(await response.text()))

    assert timed_out == down == (200, "text/html", "Scheduled maintenance")
    first, second = await front.wait_access_log(2)
    assert (first.method, first.status, first.upstream_status) == ("POST", 200, "504")
    assert (second.method, second.status, second.upstream_status) == ("GET", 200, "502")


async def test_a_wrong_path_is_nginx_s_own_404_page(
    sandbox: SandboxHandle, nginx: NginxHandle, session: aiohttp.ClientSession
) -> None:
    for path in ("/wrong", "/asterccinterfaces/", "/sandbox/stats", "/"):
        async with session.get(nginx.base_url + path, params=import_params(lead(1))) as response:
            assert (response.status, html_title(await response.text())) == (404, "404 Not Found")
    assert (await stats(sandbox))["requests"] == 0
    assert not any(e.forwarded for e in await nginx.wait_access_log(4))


async def test_a_request_line_over_32_kib_gets_414_and_a_header_line_400(
    nginx: NginxHandle,
) -> None:
    # The request line (without its CRLF) fits a 32 KiB buffer up to 32766 bytes.
    def line(length: int) -> str:
        start, end = "GET /asterccinterfaces?context=", " HTTP/1.1"
        return start + "x" * (length - len(start) - len(end)) + end

    status, body = await raw_request(nginx.port, request_head(line(32767)))
    assert (status, html_title(body)) == (414, "414 Request-URI Too Large")
    status, body = await raw_request(
        nginx.port, request_head("GET /x HTTP/1.1", "X: " + "y" * 33000)
    )
    assert (status, html_title(body)) == (400, "400 Request Header Or Cookie Too Large")

    # One byte shorter, nginx takes it and forwards it (the upstream answers as it will).
    await raw_request(nginx.port, request_head(line(32766)))
    entries = await nginx.wait_access_log(3)
    assert [e.forwarded for e in entries] == [False, False, True]
    assert entries[0].status == 414


async def test_a_large_post_body_passes_and_one_over_20_mib_gets_413(
    sandbox: SandboxHandle, nginx: NginxHandle, session: aiohttp.ClientSession
) -> None:
    memo = "m" * 600_000
    async with session.post(nginx.url, data=import_params(lead(1, memo=memo))) as response:
        assert (response.status, await response.text()) == (200, OK)
    (customer,) = await customers(sandbox)
    assert len(customer["fields"]["memo"]) == len(memo)
    # Larger than nginx's memory buffer: it went through a temp file in the harness's folder.
    assert "a client request body is buffered to a temporary file" in nginx.error_log()

    head = request_head(
        "POST /asterccinterfaces HTTP/1.1",
        "Content-Type: application/x-www-form-urlencoded",
        f"Content-Length: {20 * 1024 * 1024 + 1}",
    )
    status, body = await raw_request(nginx.port, head)
    assert (status, html_title(body)) == (413, "413 Request Entity Too Large")
    assert (await stats(sandbox))["requests"] == 1


async def test_nginx_itself_stopped_refuses_connections_and_comes_back_on_its_port(
    nginx: NginxHandle, session: aiohttp.ClientSession
) -> None:
    port = nginx.port
    await nginx.stop()
    with pytest.raises(aiohttp.ClientConnectorError):
        await post(session, nginx.url, 1)
    await nginx.start()
    assert nginx.port == port
    assert await post(session, nginx.url, 1) == (200, OK)


async def test_an_nginx_that_cannot_start_is_an_error_not_a_skip(
    tmp_path: Path, nginx_binary: str
) -> None:
    bad = NginxFront(client_max_body_size="twenty megabytes")
    with pytest.raises(NginxError, match="client_max_body_size"):
        async with serve_nginx("http://127.0.0.1:9", tmp_path / "nginx", bad, binary=nginx_binary):
            pass


def test_the_skip_reason_says_nginx_could_not_be_installed(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    monkeypatch.delenv(INSTALL_ERROR_ENV, raising=False)
    assert missing_reason().startswith("nginx is not installed and could not be installed: ")
    monkeypatch.setenv(INSTALL_ERROR_ENV, "apt-get install failed (exit 100)")
    assert missing_reason().endswith(": apt-get install failed (exit 100)")


def test_the_stock_config(tmp_path: Path) -> None:
    config = render_config(NginxFront(), "http://127.0.0.1:8765", 8080, tmp_path)
    for directive in (
        "daemon off;",
        "large_client_header_buffers 4 32k;",
        "client_max_body_size 20M;",
        "proxy_read_timeout 180000ms;",
        "proxy_pass http://127.0.0.1:8765;",
        f"pid {tmp_path / 'nginx.pid'};",
        f"client_body_temp_path {tmp_path / 'temp' / 'client_body'};",
    ):
        assert directive in config
    assert "limit_req_zone" not in config
    assert "limit_req " not in config
    assert "error_page" not in config
    assert "listen 127.0.0.1:8080;" in config and "ssl" not in config


def test_a_tls_front_listens_with_ssl_and_its_url_is_https(tmp_path: Path) -> None:
    tls = TlsFiles(tmp_path / "server.crt", tmp_path / "server.key")
    config = render_config(NginxFront(tls=tls), "http://127.0.0.1:8765", 8080, tmp_path)
    for directive in (
        "listen 127.0.0.1:8080 ssl;",
        f"ssl_certificate {tls.certificate};",
        f"ssl_certificate_key {tls.key};",
    ):
        assert directive in config
    handle = NginxHandle("nginx", "http://127.0.0.1:8765", tmp_path, NginxFront(tls=tls))
    handle.port = 8080
    assert handle.url == "https://127.0.0.1:8080/asterccinterfaces"
    assert handle.plain_url == "http://127.0.0.1:8080/asterccinterfaces"


async def test_a_tls_front_passes_an_import_call_over_https(
    tmp_path: Path, sandbox: SandboxHandle, nginx_factory: NginxFactory
) -> None:
    tls = await self_signed_certificate(tmp_path / "tls")
    front = await nginx_factory(sandbox, NginxFront(tls=tls))
    trusted = front.client_tls()
    assert trusted is not None
    async with (
        aiohttp.ClientSession() as session,
        session.post(front.url, data=import_params(lead(1)), ssl=trusted) as answer,
    ):
        assert (answer.status, await answer.text()) == (200, OK)
    (entry,) = await front.wait_access_log(1)
    assert (entry.method, entry.status, entry.upstream_status) == ("POST", 200, "200")


def test_rates_below_one_a_second_are_per_minute() -> None:
    assert RateLimit(20).rate == "20r/s"
    assert RateLimit(0.5).rate == "30r/m"
    with pytest.raises(ValueError, match="whole requests"):
        RateLimit(0.001)
    with pytest.raises(ValueError, match="upstream must be a base URL"):
        render_config(NginxFront(), "http://127.0.0.1:8765/asterccinterfaces", 8080, Path("/x"))


def test_find_nginx_looks_in_sbin_when_it_is_not_on_path(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    binary = tmp_path / "nginx"
    binary.write_text("#!/bin/sh\n")
    binary.chmod(0o755)
    monkeypatch.setenv("PATH", "/nonexistent")
    monkeypatch.setattr(nginx_module, "_SEARCH_PATH", ("/nonexistent", str(tmp_path)))
    assert find_nginx() == str(binary)
    monkeypatch.setattr(nginx_module, "_SEARCH_PATH", ())
    assert find_nginx() is None
