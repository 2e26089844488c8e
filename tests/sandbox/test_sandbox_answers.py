"""The sandbox answers each request as the vendor's server does: one test per answer code."""

from __future__ import annotations

import urllib.parse

import aiohttp
import pytest
from sandbox_helpers import ACCOUNT, Client, params

from bulkimport.protocol import (
    PARAMETER_NAMES,
    ImportParams,
    PasswordType,
    UserType,
    md5_hex,
    parse_answer,
)
from bulkimport.sandbox import SandboxHandle

AGENT = ImportParams(
    org="demo", user="1001", password="1001", campaign="1", usertype=UserType.AGENT
)
GOOD = "name=Joe||phone1=13800000001"


@pytest.mark.parametrize("method", ["GET", "POST"])
async def test_a_new_record_is_imported_by_get_and_by_post(client: Client, method: str) -> None:
    assert await client.message(GOOD, method=method) == "BackMsg_84"
    [customer] = await client.customers()
    assert customer["fields"] == {"customername": "Joe", "phone1": "13800000001"}
    assert customer["package"] == "1"
    assert customer["writes"] == 1


async def test_the_answer_body_is_exactly_the_documented_format(client: Client) -> None:
    status, body = await client.send(params(GOOD))
    assert (status, body) == (200, "|Retuen|1|Retuen|BackMsg_84")


@pytest.mark.parametrize(
    ("base", "override"),
    [
        (ACCOUNT, {}),
        (ImportParams("demo", "admin", "secret", "1", pwdtype=PasswordType.MD5), {}),
        (AGENT, {}),
        (ImportParams("demo", "1001", "1001", "2", UserType.AGENT, PasswordType.MD5), {}),
    ],
)
async def test_good_credentials_in_plaintext_and_md5(
    client: Client, base: ImportParams, override: dict[str, str]
) -> None:
    assert await client.message(GOOD, base=base, **override) == "BackMsg_84"


@pytest.mark.parametrize(
    ("override", "base", "expected"),
    [
        ({"orgidentity": "other"}, ACCOUNT, "BackMsg_02"),
        ({"user": "nobody"}, ACCOUNT, "BackMsg_15"),
        ({"password": "wrong"}, ACCOUNT, "BackMsg_63"),
        ({"pwdtype": "md5"}, ACCOUNT, "BackMsg_63"),  # the plain password is not its MD5
        ({"user": "9999"}, AGENT, "BackMsg_03"),
        ({"user": "9999", "password": "wrong"}, AGENT, "BackMsg_03"),
        ({"password": "wrong"}, AGENT, "BackMsg_07"),
        ({"password": md5_hex("wrong"), "pwdtype": "md5"}, AGENT, "BackMsg_07"),
        ({"pwdtype": "md5"}, AGENT, "BackMsg_07"),
        ({"modeltype": "Package"}, ACCOUNT, "BackMsg_70"),
        ({"model_id": "x1"}, ACCOUNT, "BackMsg_67"),
        ({"model_id": "99"}, ACCOUNT, "BackMsg_73"),
        ({"source": "excel"}, ACCOUNT, "BackMsg_72"),
        ({"phone_field": "fax"}, ACCOUNT, "BackMsg_74 phone_field=fax"),
        ({"orgidentity": ""}, ACCOUNT, "BackMsg_01 orgidentity"),
        ({"password": ""}, ACCOUNT, "BackMsg_01 password"),
        ({"model_id": ""}, ACCOUNT, "BackMsg_01 model_id"),
    ],
)
async def test_refusals(
    client: Client, override: dict[str, str], base: ImportParams, expected: str
) -> None:
    assert await client.message(GOOD, base=base, **override) == expected
    assert await client.customers() == []


async def test_a_disabled_agent_and_agents_with_a_campaigns_list(
    sandbox_factory: object,
) -> None:
    from bulkimport.sandbox import Agent, default_schema

    schema = default_schema()
    schema = type(schema)(
        org=schema.org,
        accounts=schema.accounts,
        agents=(Agent("2001", "pw", enabled=False), Agent("2002", "pw", campaigns=("2",))),
        campaigns=schema.campaigns,
    )
    handle = await sandbox_factory(schema=schema)  # type: ignore[operator]
    async with aiohttp.ClientSession() as session:
        client = Client(session, handle)
        disabled = ImportParams("demo", "2001", "pw", "1", usertype=UserType.AGENT)
        listed = ImportParams("demo", "2002", "pw", "1", usertype=UserType.AGENT)
        assert await client.message(GOOD, base=disabled) == "BackMsg_05"
        # A wrong password is refused before the account's state is told.
        assert await client.message(GOOD, base=disabled, password="no") == "BackMsg_07"
        # The vendor has no code for "not this campaign": a schema's list has no effect.
        assert await client.message(GOOD, base=listed) == "BackMsg_84"
        assert await client.message(GOOD, base=listed, model_id="2") == "BackMsg_81"


@pytest.mark.parametrize("missing", PARAMETER_NAMES[1:])
async def test_every_parameter_must_be_present(client: Client, missing: str) -> None:
    pairs = [(n, v) for n, v in params(GOOD) if n != missing]
    status, body = await client.send(pairs)
    answer = parse_answer(body)
    assert status == 200 and answer is not None
    assert not answer.success
    assert answer.message == f"BackMsg_01 missing parameter {missing}"


@pytest.mark.parametrize(
    ("context", "expected"),
    [
        ("", "BackMsg_71"),
        ("name=Joe||phone1", "BackMsg_75"),
        ("=Joe||phone1=1", "BackMsg_75"),
        ("name=Joe||phone1=1||fax=2", "BackMsg_74 fax"),
        ("name=Joe", "BackMsg_76 phone1"),
        ("name=Joe||phone1=", "BackMsg_76 phone1"),
    ],
)
@pytest.mark.parametrize("method", ["GET", "POST"])
async def test_record_refusals(client: Client, context: str, expected: str, method: str) -> None:
    assert await client.message(context, method=method) == expected


async def test_a_required_field_of_a_custom_schema_is_named(sandbox_factory: object) -> None:
    from bulkimport.sandbox import Campaign, FieldSpec, default_schema

    base = default_schema()
    fields = (FieldSpec("phone1", "phone"), FieldSpec("customername", "name", required=True))
    schema = type(base)(
        org="demo",
        accounts=base.accounts,
        agents=base.agents,
        campaigns=(Campaign("7", "Custom", fields, "phone1", main_table=False),),
    )
    handle = await sandbox_factory(schema=schema)  # type: ignore[operator]
    async with aiohttp.ClientSession() as session:
        client = Client(session, handle)
        assert await client.message("phone=1", model_id="7") == "BackMsg_76 customername"
        assert await client.message("phone=1||name=A", model_id="7") == "BackMsg_84"
        assert await client.message("phone=1||name=A", model_id="1") == "BackMsg_73"


VALUES = [
    "张三 (北京)",
    "a=b=c",
    "x&password=stolen&model_id=2",
    "100% & 50%25",
    "+ plus+sign %2B",
    "line\nbreak",
    "semi;colon,comma 'quote\" #hash ?q",
]


@pytest.mark.parametrize("method", ["GET", "POST"])
async def test_values_are_stored_exactly_as_sent(client: Client, method: str) -> None:
    for index, value in enumerate(VALUES):
        context = f"phone1=1390000000{index}||memo={value}||company={value}"
        assert await client.message(context, method=method) == "BackMsg_84"
    customers = await client.customers()
    assert [c["fields"]["memo"] for c in customers] == VALUES
    assert [c["fields"]["company"] for c in customers] == VALUES
    assert {c["package"] for c in customers} == {"1"}


async def test_a_value_cannot_change_another_parameter(client: Client) -> None:
    # Sent with correct URL encoding, '&password=' inside the context is just text.
    query = urllib.parse.urlencode(params("phone1=1&password=wrong&model_id=99"))
    async with client.session.get(f"{client.sandbox.url}?{query}") as response:
        assert await response.text() == "|Retuen|1|Retuen|BackMsg_84"
    [customer] = await client.customers()
    assert customer["fields"]["phone1"] == "1&password=wrong&model_id=99"


async def test_a_repeated_parameter_keeps_its_first_value(client: Client) -> None:
    pairs = [*params(GOOD), ("password", "wrong"), ("model_id", "2")]
    assert await client.send(pairs) == (200, "|Retuen|1|Retuen|BackMsg_84")
    assert len(await client.customers("1")) == 1


async def test_stats_count_answers_by_code_and_status(
    client: Client, sandbox: SandboxHandle
) -> None:
    await client.message(GOOD)
    await client.message(GOOD)
    await client.message(GOOD, password="wrong")
    stats = await client.get_json("/sandbox/stats")
    assert stats["by_code"] == {"BackMsg_84": 1, "BackMsg_81": 1, "BackMsg_63": 1}
    assert stats["by_status"] == {"200": 3}
    assert stats["requests"] == 3
    await client.post_json("/sandbox/reset-stats", {})
    assert (await client.get_json("/sandbox/stats"))["requests"] == 0
