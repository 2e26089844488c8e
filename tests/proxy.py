"""A small forward proxy for tests, as an office's proxy works: plain HTTP requests in
absolute form (``GET http://host:port/path HTTP/1.1``) are passed on, and ``CONNECT
host:port`` opens a tunnel for HTTPS.

It resolves host names itself, from the table it is given (``import.callcenter.test`` →
``127.0.0.1``), so that a server whose name only the proxy knows is reached only through it;
it connects to loopback addresses only, whatever it is asked. With ``credentials`` it wants
``Proxy-Authorization: Basic`` and answers 407 without it. Every request it was asked is
kept in ``requests`` (method and target), and how it ended in ``answers``.
"""

from __future__ import annotations

import asyncio
import base64
import contextlib
import ipaddress
import urllib.parse
from collections.abc import Mapping
from types import TracebackType

HEAD_LIMIT = 64 * 1024
HOP_BY_HOP = {"proxy-authorization", "proxy-connection", "connection", "keep-alive"}


class ForwardProxy:
    """``async with ForwardProxy({"import.callcenter.test": "127.0.0.1"}) as proxy:`` then
    ``proxy.url`` (``http://127.0.0.1:PORT``), or ``proxy.url_with(user, password)``."""

    def __init__(
        self,
        hosts: Mapping[str, str] | None = None,
        *,
        credentials: tuple[str, str] | None = None,
    ) -> None:
        self.hosts = {"localhost": "127.0.0.1", **(hosts or {})}
        self.credentials = credentials
        self.requests: list[tuple[str, str]] = []  # (method, target) as asked
        self.answers: list[int] = []  # the status the proxy itself gave (200 for a tunnel)
        self._server: asyncio.Server | None = None
        self._tasks: set[asyncio.Task[None]] = set()
        self.port = 0

    @property
    def url(self) -> str:
        return f"http://127.0.0.1:{self.port}"

    def url_with(self, user: str, password: str) -> str:
        """The proxy's URL with a user and password (URL-encoded, as a user writes them)."""
        quoted = f"{urllib.parse.quote(user, safe='')}:{urllib.parse.quote(password, safe='')}"
        return f"http://{quoted}@127.0.0.1:{self.port}"

    async def __aenter__(self) -> ForwardProxy:
        self._server = await asyncio.start_server(self._accept, "127.0.0.1", 0)
        self.port = self._server.sockets[0].getsockname()[1]
        return self

    async def __aexit__(
        self,
        exc_type: type[BaseException] | None,
        exc: BaseException | None,
        tb: TracebackType | None,
    ) -> None:
        assert self._server is not None
        self._server.close()
        for task in list(self._tasks):
            task.cancel()
        await asyncio.gather(*self._tasks, return_exceptions=True)
        await self._server.wait_closed()

    # --- one client connection -------------------------------------------------------------

    async def _accept(self, reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        task = asyncio.current_task()
        assert task is not None
        self._tasks.add(task)  # type: ignore[arg-type]
        try:
            await self._serve(reader, writer)
        except (ConnectionError, asyncio.IncompleteReadError, asyncio.LimitOverrunError):
            pass
        finally:
            self._tasks.discard(task)  # type: ignore[arg-type]
            writer.close()
            with contextlib.suppress(Exception):
                await writer.wait_closed()

    async def _serve(self, reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        """Requests on one connection, one after the other, until a tunnel or a passed-on
        request takes it over (they end it)."""
        while True:
            try:
                head = await reader.readuntil(b"\r\n\r\n")
            except asyncio.IncompleteReadError:
                return  # the client closed its kept-alive connection
            if len(head) > HEAD_LIMIT:
                return
            lines = head.decode("latin-1").split("\r\n")
            method, target, version = lines[0].split(" ", 2)
            headers = []
            for line in lines[1:]:
                if line:
                    name, _, value = line.partition(":")
                    headers.append((name.strip(), value.strip()))
            self.requests.append((method, target))
            if not self._authorized(headers):
                self._answer(
                    writer,
                    407,
                    "Proxy Authentication Required",
                    'Proxy-Authenticate: Basic realm="test proxy"\r\n',
                )
                await writer.drain()
                await _skip_body(reader, headers)
                continue
            if method == "CONNECT":
                host, _, port = target.rpartition(":")
                upstream = await self._connect(host.strip("[]"), int(port))
                if upstream is None:
                    self._answer(writer, 502, "Bad Gateway")
                    await writer.drain()
                    return
                self.answers.append(200)
                writer.write(b"HTTP/1.1 200 Connection established\r\n\r\n")
                await writer.drain()
                await _splice(reader, writer, *upstream)
                return
            parts = urllib.parse.urlsplit(target)
            if parts.scheme != "http" or not parts.hostname:
                self._answer(writer, 400, "Bad Request")
                await writer.drain()
                return
            upstream = await self._connect(parts.hostname, parts.port or 80)
            if upstream is None:
                self._answer(writer, 502, "Bad Gateway")
                await writer.drain()
                return
            self.answers.append(0)  # passed on: the server answers
            up_reader, up_writer = upstream
            path = parts.path or "/"
            if parts.query:
                path += "?" + parts.query
            kept = [(n, v) for n, v in headers if n.lower() not in HOP_BY_HOP]
            lines_out = [f"{method} {path} {version}", *(f"{n}: {v}" for n, v in kept)]
            # One request per upstream connection: the server closes it after its answer,
            # and so the client learns to open a new one for its next call.
            lines_out.append("Connection: close")
            up_writer.write(("\r\n".join(lines_out) + "\r\n\r\n").encode("latin-1"))
            await up_writer.drain()
            await _splice(reader, writer, up_reader, up_writer)
            return

    def _authorized(self, headers: list[tuple[str, str]]) -> bool:
        if self.credentials is None:
            return True
        user, password = self.credentials
        expected = "Basic " + base64.b64encode(f"{user}:{password}".encode()).decode()
        return any(n.lower() == "proxy-authorization" and v == expected for n, v in headers)

    def _answer(
        self, writer: asyncio.StreamWriter, status: int, reason: str, extra: str = ""
    ) -> None:
        self.answers.append(status)
        writer.write(
            f"HTTP/1.1 {status} {reason}\r\n{extra}Content-Length: 0\r\n\r\n".encode("latin-1")
        )

    async def _connect(
        self, host: str, port: int
    ) -> tuple[asyncio.StreamReader, asyncio.StreamWriter] | None:
        """A connection to ``host`` as this proxy resolves it; None for a name it does not
        know, an address that is not loopback, or a refused connection."""
        address = self.hosts.get(host.lower(), host)
        try:
            if not ipaddress.ip_address(address).is_loopback:
                return None
        except ValueError:
            return None
        try:
            return await asyncio.open_connection(address, port)
        except OSError:
            return None


async def _skip_body(reader: asyncio.StreamReader, headers: list[tuple[str, str]]) -> None:
    length = next((int(v) for n, v in headers if n.lower() == "content-length"), 0)
    if length:
        await reader.readexactly(length)


async def _splice(
    reader: asyncio.StreamReader,
    writer: asyncio.StreamWriter,
    up_reader: asyncio.StreamReader,
    up_writer: asyncio.StreamWriter,
) -> None:
    """Bytes both ways until either side closes; then both are closed."""

    async def pipe(src: asyncio.StreamReader, dst: asyncio.StreamWriter) -> None:
        try:
            while data := await src.read(65536):
                dst.write(data)
                await dst.drain()
        except (ConnectionError, OSError):
            pass
        finally:
            dst.close()

    try:
        await asyncio.gather(pipe(reader, up_writer), pipe(up_reader, writer))
    finally:
        up_writer.close()
        with contextlib.suppress(Exception):
            await up_writer.wait_closed()
