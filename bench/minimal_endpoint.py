"""A minimal Import endpoint: answers every call ``|Retuen|1|Retuen|BackMsg_84``, at once.

    python bench/minimal_endpoint.py [--port 0] [--record]

Prints ``listening on http://127.0.0.1:PORT/asterccinterfaces`` on stdout once it serves.
It checks no credentials and keeps nothing but, with ``--record``, the arrival time
(``time.time()``) of each call, for the benchmarks that look at the rate from the server side:

- ``GET /bench/arrivals`` → ``{"count": n, "times": [...]}`` (Unix seconds)
- ``POST /bench/reset`` → forget the arrivals

It is meant to run in its own process, so that it does not share an event loop (or a GIL)
with the client being measured.
"""

from __future__ import annotations

import argparse
import asyncio
import json
import os
import signal
import socket
import time

from aiohttp import web

ANSWER = b"|Retuen|1|Retuen|BackMsg_84"


def make_app(record: bool) -> web.Application:
    arrivals: list[float] = []
    now = time.time
    body = ANSWER

    if record:
        add = arrivals.append

        async def answer(request: web.Request) -> web.Response:
            add(now())
            if request.method == "POST":
                await request.read()
            return web.Response(body=body, content_type="text/plain")

    else:

        async def answer(request: web.Request) -> web.Response:
            if request.method == "POST":
                await request.read()
            return web.Response(body=body, content_type="text/plain")

    async def get_arrivals(request: web.Request) -> web.Response:
        return web.Response(
            text=json.dumps({"count": len(arrivals), "times": arrivals}),
            content_type="application/json",
        )

    async def reset(request: web.Request) -> web.Response:
        arrivals.clear()
        return web.Response(text="ok")

    app = web.Application()
    app.router.add_route("GET", "/asterccinterfaces", answer)
    app.router.add_route("POST", "/asterccinterfaces", answer)
    app.router.add_get("/bench/arrivals", get_arrivals)
    app.router.add_post("/bench/reset", reset)
    return app


async def serve(host: str, port: int, record: bool) -> None:
    runner = web.AppRunner(make_app(record), access_log=None)
    await runner.setup()
    sock = socket.socket(socket.AF_INET, socket.SOCK_STREAM)
    sock.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
    sock.bind((host, port))
    site = web.SockSite(runner, sock, backlog=1024)
    await site.start()
    print(f"listening on http://{host}:{sock.getsockname()[1]}/asterccinterfaces", flush=True)
    try:
        await asyncio.Event().wait()
    finally:
        await runner.cleanup()


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--host", default="127.0.0.1")
    parser.add_argument("--port", type=int, default=0)
    parser.add_argument("--record", action="store_true", help="keep arrival times")
    args = parser.parse_args()
    # It keeps nothing worth a clean shutdown: leave at once on SIGTERM or Ctrl-C (a graceful
    # aiohttp shutdown would wait for the keep-alive connections of the clients).
    signal.signal(signal.SIGTERM, lambda *_: os._exit(0))
    signal.signal(signal.SIGINT, lambda *_: os._exit(0))
    asyncio.run(serve(args.host, args.port, args.record))


if __name__ == "__main__":
    main()
