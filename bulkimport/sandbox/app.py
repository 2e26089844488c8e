"""The sandbox's HTTP face: ``/asterccinterfaces`` and the ``/sandbox/*`` inspection routes.

``Sandbox`` holds the state one server needs (schema, store, faults, counters); ``build_app``
wires it into an ``aiohttp.web.Application``. Checks run in the order a request is read:
parameters present (01), organisation (02), credentials (03/07/05, 15/63), campaign
(70/67/73), source (72), field settings (74), then the record itself. The faults
(``faults.py``) come first: an HTTPS-only port, an outage, the rate ceiling, the capacity
queue and a database lock, and the call's fate. Like the vendor's nginx
(``large_client_header_buffers 4 32k``), every route takes a request line and header lines of
up to 32 KiB, and answers nginx's 414 or 400 page beyond (``nginx_limits``).
Requests that change the sandbox (every method but GET under ``/sandbox/``) must be JSON
(``json_control_only``), which a web page cannot send to another site without its consent.
"""

from __future__ import annotations

import asyncio
import contextlib
import time
from collections import Counter, deque
from collections.abc import Awaitable, Callable, Mapping
from typing import Any

from aiohttp import web

from bulkimport.campaign import Campaign, Schema
from bulkimport.protocol import (
    ENDPOINT_PATH,
    PARAMETER_NAMES,
    ImportOptions,
    PasswordType,
    Source,
    UserType,
    format_answer,
    md5_hex,
)
from bulkimport.sandbox.faults import SUCCESS_CODES, Fate, FaultPlan, Faults, Outage, Verdict
from bulkimport.sandbox.importer import (
    ImportResult,
    failure,
    import_record,
    parse_context,
    resolve_rules,
)
from bulkimport.sandbox.pages import (
    BAD_GATEWAY_PAGE,
    GATEWAY_TIMEOUT_PAGE,
    HEADER_TOO_LARGE_PAGE,
    HTML_HEADERS,
    HTTPS_PORT_PAGE,
    MAINTENANCE_PAGE,
    NGINX_HEADERS,
    PHP_FATAL_PAGE,
    SERVER_ERROR_PAGE,
    URI_TOO_LARGE_PAGE,
)
from bulkimport.sandbox.remote import RemoteImports
from bulkimport.sandbox.store import Store

ARRIVALS_LIMIT = 1_000_000
# nginx's large_client_header_buffers 4 32k: a request line, or a header line, must fit in
# one 32 KiB buffer (its CRLF included).
NGINX_BUFFER_BYTES = 32 * 1024
# What the HTTP parser itself reads, far beyond, so that nginx's answer is the sandbox's.
PARSER_LIMIT_BYTES = 1024 * 1024
# nginx's client_max_body_size 20M on the vendor's install: a POST's body up to this.
BODY_LIMIT_BYTES = 20 * 1024 * 1024
REQUIRED_PARAMETERS = (
    "orgidentity",
    "usertype",
    "user",
    "pwdtype",
    "password",
    "modeltype",
    "model_id",
    "source",
)
_ANSWER_HEADERS = {"Content-Type": "text/plain; charset=utf-8"}
CONTROL_PREFIX = "/sandbox/"
JSON_TYPE = "application/json"
_READ_METHODS = frozenset({"GET", "HEAD"})


class Stats:
    """Requests by answer code and by HTTP status, and the arrival log.

    An arrival is ``[wall_time_s, http_status, code, latency_s, processed]``: when the request
    arrived (wall clock), the status answered (0: none), the code counted, the seconds from
    its arrival to its answer (``None`` for a hang), and whether the server processed it
    (checked it and, if the checks passed, imported it), which a 504 turns true later.
    """

    def __init__(self) -> None:
        self.by_code: Counter[str] = Counter()
        self.by_status: Counter[str] = Counter()
        # Codes of the calls processed after nginx had answered 504 for them.
        self.after_timeout: Counter[str] = Counter()
        self.arrivals: deque[list[Any]] = deque(maxlen=ARRIVALS_LIMIT)

    def record(
        self,
        arrived_s: float,
        status: int,
        code: str,
        latency_s: float | None = None,
        processed: bool = False,
    ) -> None:
        """Count one Import request that arrived at ``arrived_s`` (wall clock)."""
        latency = None if latency_s is None else round(latency_s, 6)
        self.add([arrived_s, status, code, latency, processed])

    def add(self, arrival: list[Any]) -> None:
        """Count an arrival built by the caller (one whose ``processed`` may change later)."""
        status = arrival[1]
        self.by_status["dropped" if status == 0 else str(status)] += 1
        self.by_code[arrival[2]] += 1
        self.arrivals.append(arrival)

    def to_json(self) -> dict[str, Any]:
        return {
            "requests": sum(self.by_status.values()),
            "by_code": dict(self.by_code),
            "by_status": dict(self.by_status),
            "processed_after_504": dict(self.after_timeout),
        }

    def reset(self) -> None:
        self.by_code.clear()
        self.by_status.clear()
        self.after_timeout.clear()
        self.arrivals.clear()


class Sandbox:
    """The state behind one sandbox server."""

    def __init__(
        self, schema: Schema, store: Store, faults: Faults, *, allow_private_fetch: bool = False
    ) -> None:
        self.schema = schema
        self.store = store
        # Remote imports may fetch from loopback, link-local and private addresses.
        self.allow_private_fetch = allow_private_fetch
        self.plan = FaultPlan(faults)
        self.stats = Stats()
        self.remote = RemoteImports(self)
        # Set when the server stops: hung requests end (their connection is dropped), and the
        # calls nginx gave up on are processed at once.
        self.stopping = asyncio.Event()
        self._late: set[asyncio.Task[None]] = set()

    @property
    def faults(self) -> Faults:
        return self.plan.faults

    def set_faults(self, faults: Faults) -> None:
        """Use ``faults`` from now on; the capacity backlog and the rate window carry over."""
        self.plan.update(faults)

    async def finish(self) -> None:
        """Stopping: end hung requests, process the calls that nginx answered 504 for."""
        self.stopping.set()
        if self._late:
            await asyncio.gather(*self._late, return_exceptions=True)

    # --- the Import event --------------------------------------------------------------------

    def check_request(
        self, params: Mapping[str, str]
    ) -> tuple[Campaign, ImportOptions] | ImportResult:
        """Everything but the record: parameters, org, credentials, campaign, source."""
        for name in PARAMETER_NAMES:
            if name not in params:
                return failure(1, f"missing parameter {name}")
        if params["EVENT"] != "Import":
            return failure(1, "EVENT")
        for name in REQUIRED_PARAMETERS:
            if not params[name]:
                return failure(1, name)
        try:
            usertype = UserType(params["usertype"])
            pwdtype = PasswordType(params["pwdtype"])
            rules = ImportOptions.from_params(params)
        except ValueError as exc:
            return failure(1, str(exc))
        if params["orgidentity"] != self.schema.org:
            return failure(2)
        refused = self._check_credentials(usertype, pwdtype, params["user"], params["password"])
        if refused is not None:
            return refused
        if params["modeltype"] != "Campaign":
            return failure(70)
        model_id = params["model_id"]
        if not model_id.isdigit():
            return failure(67)
        campaign = self.schema.campaign(model_id)
        if campaign is None:
            return failure(73)
        if params["source"] not in tuple(Source):
            return failure(72)
        resolved = resolve_rules(campaign, rules)
        if isinstance(resolved, ImportResult):
            return resolved
        return campaign, resolved

    def _check_credentials(
        self, usertype: UserType, pwdtype: PasswordType, user: str, password: str
    ) -> ImportResult | None:
        if usertype is UserType.AGENT:
            agent = self.schema.agent(user)
            # The vendor's table: 03 "agent number does not exist", 07 "wrong password",
            # 05 "the account the agent belongs to is disabled". (06 is "the agent's account
            # does not exist", which a schema cannot express.) Agents may use any campaign:
            # the vendor has no code for "not this campaign".
            if agent is None:
                return failure(3)
            if not _password_matches(pwdtype, password, agent.password):
                return failure(7)
            if not agent.enabled:
                return failure(5)
            return None
        account = self.schema.account(user)
        if account is None:
            return failure(15)
        if not _password_matches(pwdtype, password, account.password):
            return failure(63)
        return None

    async def handle_import(self, params: Mapping[str, str]) -> tuple[bool, str, str]:
        """Answer one Import call: ``(success, message, code for the stats)``."""
        checked = self.check_request(params)
        if isinstance(checked, ImportResult):
            return checked.success, checked.message, _stats_code(checked)
        campaign, rules = checked
        source = Source(params["source"])
        if source is Source.DATA:
            fields = parse_context(campaign, params["context"])
            if isinstance(fields, ImportResult):
                return fields.success, fields.message, _stats_code(fields)
            result = import_record(self.store, campaign, fields, rules)
            # As the real server: the answer goes once the row is committed.
            await self.store.durable()
            return result.success, result.message, _stats_code(result)
        answer = await self.remote.submit(campaign, rules, source, params)
        if isinstance(answer, ImportResult):
            return answer.success, answer.message, _stats_code(answer)
        return True, str(answer), "job"

    # --- what happens around the Import event -------------------------------------------------

    def outage_answer(
        self, request: web.Request, outage: Outage, arrived_s: float, started: float
    ) -> web.Response:
        """What answers while the server is down: nothing reaches the store."""
        latency_s = time.monotonic() - started
        if outage is Outage.DROP:
            self.stats.record(arrived_s, 0, "outage drop", latency_s)
            return _drop(request)
        if outage is Outage.BAD_GATEWAY:
            self.stats.record(arrived_s, 502, "outage 502", latency_s)
            return web.Response(status=502, body=BAD_GATEWAY_PAGE, headers=NGINX_HEADERS)
        self.stats.record(arrived_s, 200, "outage html200", latency_s)
        return web.Response(body=MAINTENANCE_PAGE, headers=HTML_HEADERS)

    async def gateway_timeout(
        self,
        params: Mapping[str, str],
        verdict: Verdict,
        arrived_s: float,
        started: float,
        timeout_s: float,
    ) -> web.Response:
        """nginx's 504 at ``timeout_s``; a call meant to be answered is processed later all
        the same, when the server gets to it (PHP goes on after nginx gave up)."""
        arrival: list[Any] = [arrived_s, 504, "HTTP 504", None, False]
        if verdict.fate in (Fate.ANSWER, Fate.HTTP500_AFTER, Fate.FATAL200_AFTER):
            late = self._process_late(started + verdict.ready_s, params, arrival)
            task = asyncio.create_task(late)
            self._late.add(task)
            task.add_done_callback(self._late.discard)
        await _sleep_until(started + timeout_s)
        arrival[3] = round(time.monotonic() - started, 6)
        self.stats.add(arrival)
        return web.Response(status=504, body=GATEWAY_TIMEOUT_PAGE, headers=NGINX_HEADERS)

    async def _process_late(
        self, ready_at: float, params: Mapping[str, str], arrival: list[Any]
    ) -> None:
        delay_s = ready_at - time.monotonic()
        if delay_s > 0 and not self.stopping.is_set():
            with contextlib.suppress(TimeoutError):
                await asyncio.wait_for(self.stopping.wait(), delay_s)
        _, _, code = await self.handle_import(params)
        self.stats.after_timeout[code] += 1
        arrival[4] = True


def _password_matches(pwdtype: PasswordType, sent: str, password: str) -> bool:
    if pwdtype is PasswordType.MD5:
        return sent.lower() == md5_hex(password)
    return sent == password


def _stats_code(result: ImportResult) -> str:
    return f"BackMsg_{result.codes[0]:02d}" if result.codes else "none"


SANDBOX_KEY = web.AppKey("sandbox", Sandbox)


async def _params(request: web.Request) -> dict[str, str]:
    # The first occurrence of a name wins; a POST's body wins over its query string.
    params: dict[str, str] = {}
    if request.method == "POST":
        for name, value in (await request.post()).items():
            if isinstance(value, str):
                params.setdefault(name, value)
    for name, value in request.query.items():
        params.setdefault(name, value)
    return params


def _drop(request: web.Request) -> web.Response:
    if request.transport is not None:
        request.transport.close()
    return web.Response()  # never written: the connection is gone


async def _sleep_until(deadline: float) -> None:
    delay_s = deadline - time.monotonic()
    if delay_s > 0:
        await asyncio.sleep(delay_s)


async def asterccinterfaces(request: web.Request) -> web.StreamResponse:
    """``GET|POST /asterccinterfaces``: the Import event, with the configured faults."""
    arrived_s = time.time()
    started = time.monotonic()
    sandbox = request.app[SANDBOX_KEY]
    plan = sandbox.plan
    faults = plan.faults
    if faults.https_only:
        # nginx answers before anything reaches PHP, and closes the connection.
        sandbox.stats.record(arrived_s, 400, "https-only 400", time.monotonic() - started)
        headers = {**NGINX_HEADERS, "Connection": "close"}
        return web.Response(status=400, body=HTTPS_PORT_PAGE, headers=headers)
    if faults.outage is not Outage.OFF:
        return sandbox.outage_answer(request, faults.outage, arrived_s, started)
    stats = sandbox.stats
    if plan.throttled(started):
        stats.record(arrived_s, 429, "HTTP 429", time.monotonic() - started)
        return web.Response(
            status=429,
            text="Too Many Requests",
            headers={"Retry-After": str(faults.retry_after_s)},
        )
    verdict = plan.decide(started)
    params = await _params(request)
    fate = verdict.fate
    if fate is Fate.HANG:
        stats.record(arrived_s, 0, "hung")
        await sandbox.stopping.wait()
        return _drop(request)
    if verdict.timed_out:
        return await sandbox.gateway_timeout(
            params, verdict, arrived_s, started, faults.queue_timeout_s
        )
    await _sleep_until(started + verdict.ready_s)
    if fate is Fate.ANSWER:
        success, message, code = await sandbox.handle_import(params)
        stats.record(arrived_s, 200, code, time.monotonic() - started, True)
        answer = verdict.preamble + format_answer(success, message)
        return web.Response(body=answer.encode(), headers=_ANSWER_HEADERS)
    if fate is Fate.CODE:
        code = f"BackMsg_{verdict.code:02d}"
        stats.record(arrived_s, 200, code, time.monotonic() - started)
        answer = verdict.preamble + format_answer(verdict.code in SUCCESS_CODES, code)
        return web.Response(body=answer.encode(), headers=_ANSWER_HEADERS)
    if fate in (Fate.HTTP500_AFTER, Fate.FATAL200_AFTER):
        # PHP saved the row, then died: with display_errors off php-fpm sends a bare 500,
        # with it on its fatal error goes out with status 200.
        _, _, code = await sandbox.handle_import(params)
        status = 500 if fate is Fate.HTTP500_AFTER else 200
        latency_s = time.monotonic() - started
        stats.record(arrived_s, status, f"{fate.value} {code}", latency_s, True)
        if status == 500:
            return web.Response(status=500, body=b"", headers=HTML_HEADERS)
        return web.Response(body=PHP_FATAL_PAGE, headers=HTML_HEADERS)
    if fate is Fate.HTTP500:
        stats.record(arrived_s, 500, "HTTP 500", time.monotonic() - started)
        return web.Response(status=500, body=SERVER_ERROR_PAGE, headers=HTML_HEADERS)
    # Fate.DROP
    stats.record(arrived_s, 0, "dropped", time.monotonic() - started)
    return _drop(request)


def _model_id(request: web.Request) -> str | None:
    return request.query.get("model_id") or None


async def get_customers(request: web.Request) -> web.Response:
    store = request.app[SANDBOX_KEY].store
    return web.json_response([c.to_json() for c in store.customers(_model_id(request))])


async def set_customer_status(request: web.Request) -> web.Response:
    """``POST /sandbox/customers/status`` ``{model_id, key, status?, agent?, package?}``."""
    sandbox = request.app[SANDBOX_KEY]
    data = await _json_object(request)
    campaign = sandbox.schema.campaign(str(data.get("model_id", "")))
    if campaign is None:
        raise web.HTTPNotFound(text="unknown model_id")
    values = {
        k: None if data.get(k) is None else str(data[k]) for k in ("status", "agent", "package")
    }
    found = sandbox.store.set_customer(
        campaign.table,
        str(data.get("key", "")),
        status=values["status"],
        agent=values["agent"],
        package=values["package"],
    )
    if not found:
        raise web.HTTPNotFound(text="no customer with that key")
    await sandbox.store.durable()
    customer = sandbox.store.find_customer(campaign.table, str(data["key"]))
    assert customer is not None
    return web.json_response(customer.to_json())


async def get_diallist(request: web.Request) -> web.Response:
    store = request.app[SANDBOX_KEY].store
    return web.json_response(store.diallist(_model_id(request)))


async def get_stats(request: web.Request) -> web.Response:
    sandbox = request.app[SANDBOX_KEY]
    backlog_s = sandbox.plan.capacity.backlog_s(time.monotonic())
    return web.json_response({**sandbox.stats.to_json(), "backlog_s": round(backlog_s, 6)})


async def reset_stats(request: web.Request) -> web.Response:
    sandbox = request.app[SANDBOX_KEY]
    sandbox.stats.reset()
    return web.json_response(sandbox.stats.to_json())


async def get_arrivals(request: web.Request) -> web.Response:
    return web.json_response(list(request.app[SANDBOX_KEY].stats.arrivals))


async def get_jobs(request: web.Request) -> web.Response:
    return web.json_response(request.app[SANDBOX_KEY].store.jobs())


async def get_faults(request: web.Request) -> web.Response:
    return web.json_response(request.app[SANDBOX_KEY].faults.to_json())


async def set_faults(request: web.Request) -> web.Response:
    """``POST /sandbox/faults``: change the faults named in a JSON object, keep the others."""
    sandbox = request.app[SANDBOX_KEY]
    try:
        faults = Faults.from_json(await _json_object(request), base=sandbox.faults)
    except (TypeError, ValueError) as exc:
        raise web.HTTPBadRequest(text=str(exc)) from exc
    sandbox.set_faults(faults)
    return web.json_response(faults.to_json())


async def clear_faults(request: web.Request) -> web.Response:
    """``DELETE /sandbox/faults``: every fault off."""
    sandbox = request.app[SANDBOX_KEY]
    sandbox.set_faults(Faults())
    return web.json_response(sandbox.faults.to_json())


async def _json_object(request: web.Request) -> dict[str, Any]:
    try:
        data = await request.json()
    except ValueError as exc:
        raise web.HTTPBadRequest(text="the body must be a JSON object") from exc
    if not isinstance(data, dict):
        raise web.HTTPBadRequest(text="the body must be a JSON object")
    return data


def _is_control(request: web.Request) -> bool:
    """A request to a ``/sandbox/`` route (by its path or by the route it matched)."""
    if request.path.startswith(CONTROL_PREFIX) or request.path == CONTROL_PREFIX.rstrip("/"):
        return True
    resource = request.match_info.route.resource
    return resource is not None and resource.canonical.startswith(CONTROL_PREFIX)


@web.middleware
async def json_control_only(
    request: web.Request, handler: Callable[[web.Request], Awaitable[web.StreamResponse]]
) -> web.StreamResponse:
    """Requests that change the sandbox (every method but GET under ``/sandbox/``) must be
    ``application/json``: a web page can send a form or a text/plain body to another site
    without asking, but not JSON (the browser asks first, and the sandbox never says yes)."""
    if (
        request.method not in _READ_METHODS
        and _is_control(request)
        and request.content_type.lower() != JSON_TYPE
    ):
        raise web.HTTPUnsupportedMediaType(
            text=f"{request.method} {request.path} takes Content-Type: {JSON_TYPE} only"
        )
    return await handler(request)


@web.middleware
async def nginx_limits(
    request: web.Request, handler: Callable[[web.Request], Awaitable[web.StreamResponse]]
) -> web.StreamResponse:
    """nginx's answers to a request line or a header line that does not fit in one of its
    32 KiB buffers: 414 for the line, 400 "Request Header Or Cookie Too Large" for a header.
    (The runner's parser must read up to ``PARSER_LIMIT_BYTES``, so that they reach here.)"""
    version = request.version
    line = f"{request.method} {request.raw_path} HTTP/{version.major}.{version.minor}\r\n"
    headers = {**NGINX_HEADERS, "Connection": "close"}
    if len(line.encode("utf-8", "surrogateescape")) > NGINX_BUFFER_BYTES:
        return web.Response(status=414, body=URI_TOO_LARGE_PAGE, headers=headers)
    if any(len(name) + len(value) + 4 > NGINX_BUFFER_BYTES for name, value in request.raw_headers):
        return web.Response(status=400, body=HEADER_TOO_LARGE_PAGE, headers=headers)
    return await handler(request)


def build_app(sandbox: Sandbox) -> web.Application:
    """The aiohttp application serving ``sandbox``."""
    app = web.Application(
        middlewares=[nginx_limits, json_control_only], client_max_size=BODY_LIMIT_BYTES
    )
    app[SANDBOX_KEY] = sandbox
    app.router.add_route("GET", ENDPOINT_PATH, asterccinterfaces)
    app.router.add_route("POST", ENDPOINT_PATH, asterccinterfaces)
    app.router.add_get("/sandbox/customers", get_customers)
    app.router.add_post("/sandbox/customers/status", set_customer_status)
    app.router.add_get("/sandbox/diallist", get_diallist)
    app.router.add_get("/sandbox/stats", get_stats)
    app.router.add_post("/sandbox/reset-stats", reset_stats)
    app.router.add_get("/sandbox/arrivals", get_arrivals)
    app.router.add_get("/sandbox/jobs", get_jobs)
    app.router.add_get("/sandbox/faults", get_faults)
    app.router.add_post("/sandbox/faults", set_faults)
    app.router.add_delete("/sandbox/faults", clear_faults)
    return app
