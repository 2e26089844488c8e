"""Duplicates, the dial list and packages on the shared main table."""

from __future__ import annotations

from sandbox_helpers import Client

FIRST = "name=Ann||phone1=13811112222||city=Xi'an"
CHANGED = "name=Ann Lee||phone1=13811112222||memo=called twice"


async def test_phone_field_puts_a_new_record_in_the_dial_list(client: Client) -> None:
    context = "phone1=13811112222||priority=5||dialtime=2030-01-01 09:00:00"
    answer = await client.message(
        context, phone_field="phone1", priority_field="priority", dialtime_field="dialtime"
    )
    assert answer == "BackMsg_83"
    [entry] = await client.get_json("/sandbox/diallist", model_id="1")
    assert entry["phone"] == "13811112222"
    assert entry["priority"] == "5"
    assert entry["dialtime"] == "2030-01-01 09:00:00"


async def test_phone_field_by_display_name_and_empty_phone(client: Client) -> None:
    assert await client.message("phone1=1||name=Bo", phone_field="name") == "BackMsg_83"
    assert await client.message("phone1=2", phone_field="phone2") == "BackMsg_84"
    [entry] = await client.get_json("/sandbox/diallist", model_id="1")
    assert entry["phone"] == "Bo"


async def test_dupway_update_merges_and_counts_a_write(client: Client) -> None:
    assert await client.message(FIRST) == "BackMsg_84"
    assert await client.message(CHANGED, dupway="update") == "BackMsg_78"
    [customer] = await client.customers()
    assert customer["fields"] == {
        "customername": "Ann Lee",
        "phone1": "13811112222",
        "city": "Xi'an",
        "memo": "called twice",
    }
    assert customer["writes"] == 2


async def test_dupway_skip_keeps_the_record(client: Client) -> None:
    await client.message(FIRST)
    assert await client.message(FIRST, dupway="skip") == "BackMsg_81"  # same data
    assert await client.message(CHANGED, dupway="skip") == "BackMsg_82"  # same phone
    [customer] = await client.customers()
    assert customer["fields"]["customername"] == "Ann"
    assert customer["writes"] == 1


async def test_resetstatus_and_emptyagent(client: Client) -> None:
    await client.message(FIRST)
    await client.post_json(
        "/sandbox/customers/status",
        {"model_id": "1", "key": "13811112222", "status": "callback", "agent": "1001"},
    )
    answer = await client.message(CHANGED, dupway="update", resetstatus="yes", emptyagent="yes")
    assert answer == "BackMsg_78,BackMsg_77,BackMsg_79"
    [customer] = await client.customers()
    assert (customer["status"], customer["agent"]) == ("", "")


async def test_resetstatus_alone_with_dupway_skip(client: Client) -> None:
    await client.message(FIRST)
    await client.post_json(
        "/sandbox/customers/status", {"model_id": "1", "key": "13811112222", "status": "x"}
    )
    assert await client.message(FIRST, resetstatus="yes") == "BackMsg_81,BackMsg_77"
    [customer] = await client.customers()
    assert customer["status"] == ""
    assert customer["fields"]["customername"] == "Ann"


async def test_dupdiallist(client: Client) -> None:
    dial = {"phone_field": "phone1"}
    assert await client.message(FIRST, **dial) == "BackMsg_83"
    assert await client.message(FIRST, dupdiallist="ignoreDuplicate", **dial) == "BackMsg_81"
    assert await client.message(FIRST, dupdiallist="all", **dial) == "BackMsg_81,BackMsg_80"
    assert (
        await client.message(FIRST, dupdiallist="ignoreSuccess", **dial) == "BackMsg_81,BackMsg_80"
    )
    await client.post_json(
        "/sandbox/customers/status", {"model_id": "1", "key": "13811112222", "status": "success"}
    )
    assert await client.message(FIRST, dupdiallist="ignoreSuccess", **dial) == "BackMsg_81"
    assert await client.message(FIRST, dupdiallist="all", **dial) == "BackMsg_81,BackMsg_80"
    assert len(await client.get_json("/sandbox/diallist", model_id="1")) == 4


async def test_changepackage_on_the_shared_main_table(client: Client) -> None:
    assert await client.message(FIRST, model_id="1") == "BackMsg_84"
    # Campaign 2 shares the main table: the customer is found, in package 1.
    assert await client.message(FIRST, model_id="2", changepackage="skip") == "BackMsg_81"
    answer = await client.message(FIRST, model_id="2", changepackage="unassignToCurrent")
    assert answer == "BackMsg_81"  # it belongs to a package: stays there
    assert (await client.customers("1"))[0]["package"] == "1"
    answer = await client.message(
        CHANGED, model_id="2", changepackage="reassignToCurrent", dupway="update"
    )
    assert answer == "BackMsg_78"
    assert await client.customers("1") == []
    [moved] = await client.customers("2")
    assert moved["fields"]["customername"] == "Ann Lee"
    assert moved["writes"] == 2


async def test_unassign_to_current_takes_a_customer_without_package(client: Client) -> None:
    await client.message(FIRST, model_id="1")
    await client.post_json(
        "/sandbox/customers/status", {"model_id": "1", "key": "13811112222", "package": ""}
    )
    answer = await client.message(FIRST, model_id="2", changepackage="unassignToCurrent")
    assert answer == "BackMsg_81"  # data unchanged (dupway=skip), but now in package 2
    [customer] = await client.customers("2")
    assert customer["package"] == "2"


async def test_setting_the_status_of_an_unknown_customer_is_404(client: Client) -> None:
    url = client.sandbox.base_url + "/sandbox/customers/status"
    async with client.session.post(url, json={"model_id": "1", "key": "nobody"}) as response:
        assert response.status == 404
