"""A front end for tests, as nginx before php-fpm: it passes each call to the sandbox, or
answers in its place the way nginx does when the application is busy or away.

- ``lock(seconds)``: the application holds a lock (a backup): ``backlog`` calls wait for it
  and are then passed on; the calls beyond the backlog get nginx's 502 at once (php-fpm's
  listen queue is full).
- ``mode = "maintenance"``: nginx's 503 page (a maintenance switch) for every call.
- ``mode = "https-port"``: nginx's 400 "The plain HTTP request was sent to HTTPS port"
  (a plain-http call to the port of an HTTPS server).

Every call it answered is kept in ``answers`` as ``(monotonic time, status)``.
"""

from __future__ import annotations

import asyncio
import time
from types import TracebackType

import aiohttp
from aiohttp import web

BAD_GATEWAY = (
    b"<html>\r\n<head><title>502 Bad Gateway</title></head>\r\n<body>\r\n"
    b"<center><h1>502 Bad Gateway</h1></center>\r\n<hr><center>nginx</center>\r\n"
    b"</body>\r\n</html>\r\n"
)
MAINTENANCE = (
    b"<html>\r\n<head><title>503 Service Temporarily Unavailable</title></head>\r\n<body>\r\n"
    b"<center><h1>503 Service Temporarily Unavailable</h1></center>\r\n"
    b"<hr><center>nginx</center>\r\n</body>\r\n</html>\r\n"
)
HTTPS_PORT = (
    b"<html>\r\n<head><title>400 The plain HTTP request was sent to HTTPS port</title></head>"
    b"\r\n<body>\r\n<center><h1>400 Bad Request</h1></center>\r\n"
    b"<center>The plain HTTP request was sent to HTTPS port</center>\r\n"
    b"<hr><center>nginx</center>\r\n</body>\r\n</html>\r\n"
)
HTML = {"Content-Type": "text/html", "Server": "nginx"}


class Front:
    """``async with Front(sandbox.url) as front:`` then send to ``front.url``."""

    def __init__(self, upstream_url: str, *, backlog: int = 4) -> None:
        self.upstream_url = upstream_url
        self.backlog = backlog
        self.mode = "pass"
        self.answers: list[tuple[float, int]] = []
        self._unlocked = asyncio.Event()
        self._unlocked.set()
        self._waiting = 0
        self._runner: web.AppRunner | None = None
        self._session: aiohttp.ClientSession | None = None
        self._unlock: asyncio.TimerHandle | None = None
        self.url = ""

    def lock(self, seconds: float) -> None:
        """Hold every call for ``seconds`` from now (those beyond the backlog get a 502)."""
        self._unlocked.clear()
        if self._unlock is not None:
            self._unlock.cancel()
        self._unlock = asyncio.get_running_loop().call_later(seconds, self._unlocked.set)

    @property
    def locked(self) -> bool:
        return not self._unlocked.is_set()

    async def __aenter__(self) -> Front:
        self._session = aiohttp.ClientSession()
        app = web.Application()
        app.router.add_route("*", "/{tail:.*}", self._handle)
        self._runner = web.AppRunner(app, access_log=None)
        await self._runner.setup()
        site = web.TCPSite(self._runner, "127.0.0.1", 0)
        await site.start()
        port = self._runner.addresses[0][1]
        self.url = f"http://127.0.0.1:{port}/asterccinterfaces"
        return self

    async def __aexit__(
        self,
        exc_type: type[BaseException] | None,
        exc: BaseException | None,
        tb: TracebackType | None,
    ) -> None:
        if self._unlock is not None:
            self._unlock.cancel()
        self._unlocked.set()
        if self._runner is not None:
            await self._runner.cleanup()
        if self._session is not None:
            await self._session.close()

    def _answer(self, status: int, body: bytes, headers: dict[str, str]) -> web.Response:
        self.answers.append((time.monotonic(), status))
        return web.Response(status=status, body=body, headers=headers)

    async def _handle(self, request: web.Request) -> web.Response:
        body = await request.read()
        if self.mode == "https-port":
            return self._answer(400, HTTPS_PORT, HTML)
        if self.mode == "maintenance":
            return self._answer(503, MAINTENANCE, HTML)
        if self.locked:
            if self._waiting >= self.backlog:
                return self._answer(502, BAD_GATEWAY, HTML)
            self._waiting += 1
            try:
                await self._unlocked.wait()
            finally:
                self._waiting -= 1
        assert self._session is not None
        headers = {}
        if request.content_type:
            headers["Content-Type"] = request.headers.get("Content-Type", "")
        async with self._session.request(
            request.method, self.upstream_url + request.path_qs[len("/asterccinterfaces") :],
            data=body, headers=headers,
        ) as upstream:  # fmt: skip
            answer = await upstream.read()
            kind = upstream.headers.get("Content-Type", "text/plain")
            return self._answer(upstream.status, answer, {"Content-Type": kind})
