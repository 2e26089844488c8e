"""Helpers for the sandbox tests: building calls and reading answers over real HTTP."""

from __future__ import annotations

from typing import Any

import aiohttp

from bulkimport.protocol import ImportParams, parse_answer
from bulkimport.sandbox import SandboxHandle

ACCOUNT = ImportParams(org="demo", user="admin", password="secret", campaign="1")


def params(
    context: str = "", base: ImportParams = ACCOUNT, **override: str
) -> list[tuple[str, str]]:
    """The 22 parameters of a call, with some replaced by name (``source="http"``)."""
    pairs = base.request_params(context)
    unknown = set(override) - {name for name, _ in pairs}
    assert not unknown, unknown
    return [(name, override.get(name, value)) for name, value in pairs]


class Client:
    """Talks to one sandbox over real HTTP."""

    def __init__(self, session: aiohttp.ClientSession, sandbox: SandboxHandle) -> None:
        self.session = session
        self.sandbox = sandbox

    async def send(self, pairs: list[tuple[str, str]], *, method: str = "GET") -> tuple[int, str]:
        if method == "GET":
            request = self.session.get(self.sandbox.url, params=pairs)
        else:
            request = self.session.post(self.sandbox.url, data=pairs)
        async with request as response:
            return response.status, await response.text()

    async def message(
        self, context: str = "", *, method: str = "GET", base: ImportParams = ACCOUNT, **kw: str
    ) -> str:
        """Send one call; return the answer's MESSAGE (asserting a valid answer)."""
        status, body = await self.send(params(context, base, **kw), method=method)
        assert status == 200, body
        answer = parse_answer(body)
        assert answer is not None, body
        return answer.message

    async def get_json(self, path: str, **query: str) -> Any:
        async with self.session.get(self.sandbox.base_url + path, params=query) as response:
            assert response.status == 200
            return await response.json()

    async def post_json(self, path: str, data: Any) -> Any:
        async with self.session.post(self.sandbox.base_url + path, json=data) as response:
            assert response.status == 200, await response.text()
            return await response.json()

    async def customers(self, model_id: str = "1") -> list[dict[str, Any]]:
        result: list[dict[str, Any]] = await self.get_json("/sandbox/customers", model_id=model_id)
        return result
