"""A real nginx in front of a sandbox, as the vendor's server has one.

The vendor's server is PHP behind nginx (docs: IMPORT-API.md, "What the real server is
like"). What users meet first when a load goes wrong is that nginx, not the PHP side: its 502
and 504 HTML pages when the server is overloaded or restarting, its 414 for a request line
that is too long, its 413 for a body over the limit, and what it writes in its access log. The
sandbox cannot fake those faithfully, so the tests that need them run a real nginx (Debian's
package, a process of its own with a config generated for each test) in front of a real
sandbox::

    async with serve_nginx(sandbox.base_url, tmp_path / "nginx") as front:
        ... send to front.url instead of sandbox.url ...

or, in tests under ``tests/frontends/``, the fixtures ``nginx`` (in front of the ``sandbox``
fixture) and ``nginx_factory`` (``await nginx_factory(handle, NginxFront(...))``).

What the default ``NginxFront()`` models: the stock server's settings, nothing more.

- ``large_client_header_buffers 4 32k``: a request line (a GET's URL) over 32 KiB is refused
  with nginx's 414 page, a header line over 32 KiB with a 400 page.
- ``client_max_body_size 20M``: a larger POST body gets nginx's 413 page.
- ``read_timeout_s=180``: the stock ``fastcgi_read_timeout 180``; here it is
  ``proxy_read_timeout``, the same thing for ``proxy_pass`` to the sandbox. An upstream slower
  than that gets nginx's 504 page, while the upstream goes on and may still import the row.
- only ``/asterccinterfaces`` is proxied; any other path is nginx's own 404 page (a wrong
  ``--url``), and an upstream that is down is nginx's own 502 page (connection refused).
- no ``limit_req``: the stock server never answers 429.

Options that some installations add, for the tests of how the client copes with them:

- ``rate_limit=RateLimit(rate_rps, burst=, nodelay=, status=, retry_after_s=)``: ``limit_req``
  per client address. nginx answers the excess with its own 503 page (``status=429`` for
  ``limit_req_status 429``) and no ``Retry-After``, unless ``retry_after_s`` is set: then the
  limited answers carry ``Retry-After: N`` (an ``error_page`` to a named location with
  ``add_header ... always``), as a hand-tuned setup would.
- ``read_timeout_s=1`` or so, in front of a sandbox with ``Faults(latency_s=2)``: 504s fast.
- ``tls=await self_signed_certificate(folder)``: the server moved to TLS. nginx listens with
  ``ssl`` on its port: ``front.url`` is ``https://``, and a plain ``http://`` request to that
  port gets nginx's 400 page "400 The plain HTTP request was sent to HTTPS port" (its internal
  497), before anything reaches the upstream (``front.plain_url`` is that wrong URL).
- ``maintenance_html="<html>..."``: upstream failures (502, 503, 504, nginx's own or the
  upstream's) are answered with that page and **status 200**
  (``proxy_intercept_errors on; error_page 502 503 504 =200 /maint.html``), as maintenance
  setups do: a body that is HTML, not an answer, behind a 200. With a ``rate_limit`` whose
  status is 503 and no ``retry_after_s``, the limited answers get that page too, as they would
  in such a config.

What Debian's nginx 1.22 answers (each an HTML page, ``text/html``, titled as shown, but the
maintenance page; asserted by ``test_nginx_harness.py``):

- upstream down: 502 "502 Bad Gateway"; upstream slower than the read timeout: 504
  "504 Gateway Time-out"; a path other than the endpoint: 404 "404 Not Found";
- a request line of 32767 bytes or more (32766 still passes): 414 "414 Request-URI Too Large";
  a header line over 32 KiB: 400 "400 Request Header Or Cookie Too Large";
- a body over 20 MiB: 413 "413 Request Entity Too Large" (decided on the Content-Length);
- ``limit_req``: 503 "503 Service Temporarily Unavailable" or 429 "429 Too Many Requests".

The sandbox behind it has aiohttp's own limits, lower than the real server's: a request line
over 8190 bytes gets its 400 and a body over 1 MiB its 413 (``text/plain``). Between those and
nginx's limits, what comes back is the sandbox's refusal, not the real server's answer.

The access log is one JSON object a line (``front.access_log()`` parses it into
``AccessEntry``): the request line as logged (a GET's password is in it, a POST's is not),
status, what nginx forwarded to the upstream and what came back, and ``limit_req``'s verdict.
Counting its entries against the sandbox's ``/sandbox/stats`` tells what reached nginx from
what reached the server. The error log is at ``front.error_log_path``.

Each nginx runs in the foreground (``daemon off``) with a master and one worker, its config,
pid file, logs and every temp path under its own folder, on a free loopback port, as the
current user (``user root`` when that is root, so the worker can read the test's folder).
``stop()`` and ``start()`` again keep the port: the whole server unreachable, connection
refused, for the tests of an outage in front of the upstream.

nginx is needed: ``.ci/run`` installs Debian's package when it is missing. Without the binary
the fixtures skip, saying why; a binary that is there but cannot start fails the test.
"""

from __future__ import annotations

import asyncio
import contextlib
import json
import os
import shutil
import signal
import socket
import ssl
import time
from collections.abc import AsyncIterator
from contextlib import asynccontextmanager
from dataclasses import dataclass
from pathlib import Path
from urllib.parse import urlsplit

from tests.helpers import start_process

ENDPOINT_PATH = "/asterccinterfaces"  # the Import endpoint, the only path proxied
READY_PATH = "/.frontend-ready"  # answered by nginx itself (204), not logged
MAINTENANCE_PATH = "/maint.html"
HOST = "127.0.0.1"

# How long nginx gets to answer its first request, and to exit after SIGTERM.
START_TIMEOUT_S = 10.0
STOP_TIMEOUT_S = 5.0
# Set by .ci/run when it tried to install nginx and could not: the reason a test skips.
INSTALL_ERROR_ENV = "BULKIMPORT_NGINX_INSTALL_ERROR"
_SEARCH_PATH = ("/usr/sbin", "/usr/local/sbin", "/sbin", "/usr/local/nginx/sbin")

MAINTENANCE_HTML = """<!DOCTYPE html>
<html>
<head><title>Scheduled maintenance</title></head>
<body><h1>Scheduled maintenance</h1><p>The service will be back shortly.</p></body>
</html>
"""


class NginxError(RuntimeError):
    """nginx is installed but did not start, or did not stop."""


class NginxMissing(RuntimeError):
    """There is no nginx binary (the message says why, for a skip)."""


@dataclass(frozen=True)
class RateLimit:
    """``limit_req``: ``rate_rps`` requests a second per client address, ``burst`` more queued
    (answered at once with ``nodelay``), the excess answered with ``status`` (nginx's own page;
    503 is nginx's default, 429 a common choice), with ``Retry-After: retry_after_s`` when set.
    """

    rate_rps: float
    burst: int = 0
    nodelay: bool = False
    status: int = 503
    retry_after_s: int | None = None

    def __post_init__(self) -> None:
        if self.rate_rps <= 0 or self.burst < 0:
            raise ValueError("rate_rps must be positive and burst not negative")
        if not 400 <= self.status <= 599:
            raise ValueError("limit_req_status must be within 400..599")
        if self.retry_after_s is not None and self.retry_after_s < 0:
            raise ValueError("retry_after_s cannot be negative")
        _ = self.rate  # one nginx can write

    @property
    def rate(self) -> str:
        """The ``rate=`` of ``limit_req_zone``: whole requests a second, else a minute."""
        if float(self.rate_rps).is_integer():
            return f"{int(self.rate_rps)}r/s"
        per_minute = round(self.rate_rps * 60)
        if per_minute < 1 or abs(per_minute - self.rate_rps * 60) > 1e-9:
            raise ValueError("nginx takes whole requests a second or a minute")
        return f"{per_minute}r/m"


@dataclass(frozen=True)
class TlsFiles:
    """A certificate and its private key, PEM files nginx reads (``ssl_certificate``)."""

    certificate: Path
    key: Path


async def self_signed_certificate(folder: Path, host: str = "127.0.0.1") -> TlsFiles:
    """A self-signed certificate for ``host`` (an IP address, in its subjectAltName, as a
    client checks it), made by ``openssl`` in ``folder``: a client trusts it with
    ``--ca-file certificate``."""
    await asyncio.to_thread(folder.mkdir, parents=True, exist_ok=True)
    files = TlsFiles(folder / "server.crt", folder / "server.key")
    openssl = shutil.which("openssl")
    if openssl is None:
        raise NginxError("openssl is needed to make the TLS front's certificate")
    process = await start_process(
        openssl, "req", "-x509", "-newkey", "rsa:2048", "-nodes", "-days", "2",
        "-subj", f"/CN={host}", "-addext", f"subjectAltName=IP:{host}",
        "-keyout", str(files.key), "-out", str(files.certificate),
        stdin=asyncio.subprocess.DEVNULL,
        stdout=asyncio.subprocess.DEVNULL,
        stderr=asyncio.subprocess.PIPE,
    )  # fmt: skip
    _, err = await asyncio.wait_for(process.communicate(), START_TIMEOUT_S)
    if process.returncode != 0:
        raise NginxError(f"openssl could not make a certificate: {err.decode(errors='replace')}")
    return files


@dataclass(frozen=True)
class NginxFront:
    """How the nginx in front is set up; the default is the vendor's stock server."""

    read_timeout_s: float = 180  # proxy_read_timeout (the stock fastcgi_read_timeout 180)
    rate_limit: RateLimit | None = None  # limit_req; the stock server has none
    maintenance_html: str | None = None  # upstream errors become this page with status 200
    client_max_body_size: str = "20M"
    large_client_header_buffers: str = "4 32k"
    tls: TlsFiles | None = None  # listen with ssl: the server moved to TLS

    def __post_init__(self) -> None:
        if self.read_timeout_s <= 0:
            raise ValueError("read_timeout_s must be positive")


@dataclass(frozen=True)
class AccessEntry:
    """One line of the access log."""

    time_s: float  # when nginx finished the request (wall clock)
    request: str  # the request line as logged: a GET's query string, password and all
    uri: str  # the request's URI with its query string
    status: int  # what nginx answered
    request_length: int  # bytes received: request line, headers and body
    request_time_s: float
    upstream_addr: str  # '' when nothing was forwarded
    upstream_status: str  # '' when nothing was forwarded; '502' when it could not connect
    limit_req: str  # limit_req's verdict: 'PASSED', 'REJECTED', 'DELAYED'... or ''

    @property
    def method(self) -> str:
        """The request line's method (``$request_method`` would say GET after an
        ``error_page`` redirect)."""
        return self.request.split(" ", 1)[0]

    @property
    def forwarded(self) -> bool:
        """nginx tried the upstream (it may have been down: see ``upstream_status``)."""
        return self.upstream_addr != ""

    @classmethod
    def from_json(cls, data: dict[str, str]) -> AccessEntry:
        return cls(
            time_s=float(data["msec"]),
            request=data["request"],
            uri=data["uri"],
            status=int(data["status"]),
            request_length=int(data["request_length"] or 0),
            request_time_s=float(data["request_time"] or 0),
            upstream_addr=data["upstream_addr"],
            upstream_status=data["upstream_status"],
            limit_req=data["limit_req_status"],
        )


_LOG_FIELDS = {
    "msec": "$msec",
    "request": "$request",
    "uri": "$request_uri",
    "status": "$status",
    "request_length": "$request_length",
    "request_time": "$request_time",
    "upstream_addr": "$upstream_addr",
    "upstream_status": "$upstream_status",
    "limit_req_status": "$limit_req_status",
}


def find_nginx() -> str | None:
    """The nginx binary: on ``PATH``, else in the usual sbin folders (not always on a PATH)."""
    found = shutil.which("nginx")
    if found:
        return found
    for folder in _SEARCH_PATH:
        candidate = Path(folder) / "nginx"
        if candidate.is_file() and os.access(candidate, os.X_OK):
            return str(candidate)
    return None


def missing_reason() -> str:
    """Why there is no nginx, for a skip."""
    why = os.environ.get(INSTALL_ERROR_ENV) or (
        "no nginx binary on PATH or in /usr/sbin; .ci/run installs Debian's package "
        "as root (apt-get install nginx)"
    )
    return f"nginx is not installed and could not be installed: {why}"


def render_config(front: NginxFront, upstream: str, port: int, folder: Path) -> str:
    """The ``nginx.conf`` of one front: listen on ``127.0.0.1:port``, proxy the Import
    endpoint to ``upstream`` (``http://host:port``), everything else under ``folder``."""
    parts = urlsplit(upstream)
    if parts.scheme != "http" or not parts.netloc or parts.path not in ("", "/"):
        raise ValueError(f"the upstream must be a base URL like http://127.0.0.1:8765: {upstream}")
    temp = folder / "temp"
    log_format = json.dumps(_LOG_FIELDS, separators=(",", ":"))
    limit = front.rate_limit
    lines = [
        "daemon off;",
        "master_process on;",
        "worker_processes 1;",
        f"pid {folder / 'nginx.pid'};",
        f"error_log {folder / 'error.log'} info;",
        "events { worker_connections 1024; }",
        "http {",
        "    default_type application/octet-stream;",
        "    types { text/html html; }",
        f"    log_format frontend escape=json '{log_format}';",
        f"    access_log {folder / 'access.log'} frontend;",
        f"    client_body_temp_path {temp / 'client_body'};",
        f"    proxy_temp_path {temp / 'proxy'};",
        f"    fastcgi_temp_path {temp / 'fastcgi'};",
        f"    uwsgi_temp_path {temp / 'uwsgi'};",
        f"    scgi_temp_path {temp / 'scgi'};",
        f"    large_client_header_buffers {front.large_client_header_buffers};",
        f"    client_max_body_size {front.client_max_body_size};",
    ]
    if front.tls is not None:
        lines.append(f"    ssl_certificate {front.tls.certificate};")
        lines.append(f"    ssl_certificate_key {front.tls.key};")
    if limit is not None:
        lines.append(f"    limit_req_zone $binary_remote_addr zone=import:1m rate={limit.rate};")
    lines += [
        "    server {",
        f"        listen {HOST}:{port}{' ssl' if front.tls else ''};",
        "        server_name _;",
        f"        location = {READY_PATH} {{ access_log off; return 204; }}",
        f"        location = {ENDPOINT_PATH} {{",
        f"            proxy_pass {parts.scheme}://{parts.netloc};",
        "            proxy_set_header Host $http_host;",
        "            proxy_set_header X-Real-IP $remote_addr;",
        "            proxy_set_header X-Forwarded-For $proxy_add_x_forwarded_for;",
        f"            proxy_read_timeout {_ms(front.read_timeout_s)};",
    ]
    maintenance_codes = [502, 503, 504]
    if limit is not None:
        burst = f" burst={limit.burst}" if limit.burst else ""
        nodelay = " nodelay" if limit.nodelay else ""
        lines.append(f"            limit_req zone=import{burst}{nodelay};")
        lines.append(f"            limit_req_status {limit.status};")
        if limit.retry_after_s is not None:
            lines.append(f"            error_page {limit.status} @limited;")
            if limit.status in maintenance_codes:
                maintenance_codes.remove(limit.status)
    if front.maintenance_html is not None:
        codes = " ".join(map(str, maintenance_codes))
        lines.append("            proxy_intercept_errors on;")
        lines.append(f"            error_page {codes} =200 {MAINTENANCE_PATH};")
    lines.append("        }")
    if limit is not None and limit.retry_after_s is not None:
        lines += [
            "        location @limited {",
            f"            add_header Retry-After {limit.retry_after_s} always;",
            f"            return {limit.status};",
            "        }",
        ]
    if front.maintenance_html is not None:
        lines.append(
            f"        location = {MAINTENANCE_PATH} {{ internal; root {folder / 'html'}; }}"
        )
    lines += [
        "        location / { return 404; }",
        "    }",
        "}",
    ]
    if os.geteuid() == 0:
        # A root master's workers run as nobody by default, who cannot enter pytest's
        # private tmp folders; a test's own nginx may run as root.
        lines.insert(0, "user root;")
    return "\n".join(lines) + "\n"


def _ms(seconds: float) -> str:
    return f"{max(1, round(seconds * 1000))}ms"


def _free_port() -> int:
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as sock:
        sock.bind((HOST, 0))
        return int(sock.getsockname()[1])


class NginxHandle:
    """A running nginx in front of one upstream; ``stop()`` and ``start()`` again at will
    (the port, config and logs stay)."""

    def __init__(self, binary: str, upstream: str, folder: Path, front: NginxFront) -> None:
        self.binary = binary
        self.upstream = upstream
        self.folder = folder
        self.front = front
        self.port = 0
        self._process: asyncio.subprocess.Process | None = None

    @property
    def base_url(self) -> str:
        scheme = "https" if self.front.tls is not None else "http"
        return f"{scheme}://{HOST}:{self.port}"

    @property
    def plain_url(self) -> str:
        """The Import endpoint as ``http://``: with ``tls``, the URL of a client that was not
        told the server moved to TLS."""
        return f"http://{HOST}:{self.port}{ENDPOINT_PATH}"

    def client_tls(self) -> ssl.SSLContext | None:
        """A client's TLS context that trusts this front's certificate; None without TLS."""
        if self.front.tls is None:
            return None
        return ssl.create_default_context(cafile=self.front.tls.certificate)

    @property
    def url(self) -> str:
        """The Import endpoint through nginx: what a client's ``--url`` is."""
        return self.base_url + ENDPOINT_PATH

    @property
    def config_path(self) -> Path:
        return self.folder / "nginx.conf"

    @property
    def access_log_path(self) -> Path:
        return self.folder / "access.log"

    @property
    def error_log_path(self) -> Path:
        return self.folder / "error.log"

    @property
    def running(self) -> bool:
        return self._process is not None

    @property
    def pid(self) -> int | None:
        """The master process's id while running."""
        return None if self._process is None else self._process.pid

    def access_log(self) -> list[AccessEntry]:
        """Every request logged so far, oldest first (nginx logs a request after answering
        it: use ``wait_access_log`` right after a response)."""
        if not self.access_log_path.exists():
            return []
        text = self.access_log_path.read_text(encoding="utf-8", errors="replace")
        return [AccessEntry.from_json(json.loads(line)) for line in text.splitlines() if line]

    async def wait_access_log(self, count: int, timeout_s: float = 5.0) -> list[AccessEntry]:
        """The access log once it holds at least ``count`` entries."""
        deadline = time.monotonic() + timeout_s
        while True:
            entries = self.access_log()
            if len(entries) >= count:
                return entries
            if time.monotonic() > deadline:
                raise AssertionError(f"{len(entries)} access log entries, expected {count}")
            await asyncio.sleep(0.01)

    def error_log(self) -> str:
        if not self.error_log_path.exists():
            return ""
        return self.error_log_path.read_text(encoding="utf-8", errors="replace")

    async def start(self) -> None:
        """Write the config and start nginx; return once it answers. The first start picks
        a free port (another one if that was taken meanwhile); later ones reuse it."""
        if self._process is not None:
            return
        self.folder.mkdir(parents=True, exist_ok=True)
        for name in ("client_body", "proxy", "fastcgi", "uwsgi", "scgi"):
            (self.folder / "temp" / name).mkdir(parents=True, exist_ok=True)
        if self.front.maintenance_html is not None:
            html = self.folder / "html"
            html.mkdir(exist_ok=True)
            (html / MAINTENANCE_PATH.lstrip("/")).write_text(
                self.front.maintenance_html, encoding="utf-8"
            )
        attempts = 1 if self.port else 5
        for attempt in range(attempts):
            if not self.port or attempt:
                self.port = _free_port()
            self.config_path.write_text(
                render_config(self.front, self.upstream, self.port, self.folder), encoding="utf-8"
            )
            log_size = self.error_log_path.stat().st_size if self.error_log_path.exists() else 0
            try:
                await self._launch()
                return
            except NginxError:
                new_lines = self.error_log()[log_size:]
                if "Address already in use" not in new_lines or attempt == attempts - 1:
                    raise

    async def _launch(self) -> None:
        with (self.folder / "stderr.log").open("ab") as stderr:
            process = await start_process(
                self.binary,
                "-p",
                str(self.folder),
                "-c",
                str(self.config_path),
                "-e",
                str(self.error_log_path),
                stdin=asyncio.subprocess.DEVNULL,
                stdout=asyncio.subprocess.DEVNULL,
                stderr=stderr,
                # Its own process group: a stuck master and its worker are killed together.
                start_new_session=True,
            )
        try:
            await self._wait_ready(process)
        except BaseException:
            await _end(process)
            raise
        self._process = process

    async def _wait_ready(self, process: asyncio.subprocess.Process) -> None:
        deadline = time.monotonic() + START_TIMEOUT_S
        request = f"GET {READY_PATH} HTTP/1.0\r\nHost: {HOST}\r\n\r\n".encode()
        while True:
            if process.returncode is not None:
                raise NginxError(
                    f"nginx exited with {process.returncode} at start:\n{self._log_tail()}"
                )
            with contextlib.suppress(OSError):
                reader, writer = await asyncio.open_connection(
                    HOST, self.port, ssl=self.client_tls()
                )
                try:
                    writer.write(request)
                    status_line = await reader.readline()
                finally:
                    writer.close()
                    with contextlib.suppress(OSError):
                        await writer.wait_closed()
                if status_line.split(b" ")[1:2] == [b"204"]:
                    return
                raise NginxError(f"port {self.port} answered {status_line!r}, not nginx")
            if time.monotonic() > deadline:
                raise NginxError(f"nginx did not answer in {START_TIMEOUT_S}s:\n{self._log_tail()}")
            await asyncio.sleep(0.01)

    def _log_tail(self) -> str:
        stderr = self.folder / "stderr.log"
        text = self.error_log()
        if stderr.exists():
            text += stderr.read_text(encoding="utf-8", errors="replace")
        return "\n".join(text.splitlines()[-20:])

    async def stop(self) -> None:
        """Fast shutdown (SIGTERM: open connections are closed, as in a crash or restart);
        killed if it has not exited in ``STOP_TIMEOUT_S``."""
        process, self._process = self._process, None
        if process is not None:
            await _end(process)


async def _end(process: asyncio.subprocess.Process) -> None:
    if process.returncode is None:
        with contextlib.suppress(ProcessLookupError):
            process.send_signal(signal.SIGTERM)
        try:
            await asyncio.wait_for(process.wait(), STOP_TIMEOUT_S)
        except TimeoutError:
            with contextlib.suppress(ProcessLookupError):
                os.killpg(process.pid, signal.SIGKILL)
            await process.wait()
            raise NginxError(f"nginx (pid {process.pid}) did not stop on SIGTERM") from None


@asynccontextmanager
async def serve_nginx(
    upstream: str, folder: Path, front: NginxFront | None = None, *, binary: str | None = None
) -> AsyncIterator[NginxHandle]:
    """Start nginx in front of ``upstream`` (a base URL such as a sandbox's ``base_url``),
    its files in ``folder``; stop it at exit. Raises ``NginxMissing`` without a binary and
    ``NginxError`` when nginx does not start."""
    binary = binary or find_nginx()
    if binary is None:
        raise NginxMissing(missing_reason())
    handle = NginxHandle(binary, upstream, folder, front or NginxFront())
    try:
        await handle.start()
        yield handle
    finally:
        await handle.stop()
