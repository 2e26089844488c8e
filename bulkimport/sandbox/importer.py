"""How one record is imported into a campaign: field checks, duplicates, the dial list.

This is the rule book of ``source=data`` (and of each line of a remote CSV file). It returns
an ``ImportResult`` whose codes become the answer's message: the main code first
(84, 83, 78, 81 or 82), then what else happened to a duplicate (77 status reset, 79 agent
cleared, 80 put in the dial list), separated by commas, e.g. ``BackMsg_78,BackMsg_77``.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from dataclasses import dataclass, replace

from bulkimport.campaign import Campaign
from bulkimport.errors import RecordError
from bulkimport.protocol import ChangePackage, DupDialList, DupWay, ImportOptions, decode_record
from bulkimport.sandbox.store import Customer, Store

SUCCESS_STATUS = "success"  # the customer status that dupdiallist=ignoreSuccess respects


@dataclass(frozen=True)
class ImportResult:
    """The answer to one record: CODE 1 or 2, BackMsg codes, and an optional detail."""

    success: bool
    codes: tuple[int, ...]
    detail: str = ""

    @property
    def message(self) -> str:
        text = ",".join(f"BackMsg_{code:02d}" for code in self.codes)
        return f"{text} {self.detail}" if self.detail else text


def failure(code: int, detail: str = "") -> ImportResult:
    return ImportResult(False, (code,), detail)


def resolve_rules(campaign: Campaign, rules: ImportOptions) -> ImportOptions | ImportResult:
    """``rules`` with ``phone_field`` etc. turned into field names; 74 names an unknown one."""
    resolved: list[str] = []
    for setting in ("phone_field", "priority_field", "dialtime_field"):
        name: str = getattr(rules, setting)
        field_name = campaign.resolve(name) if name else ""
        if field_name is None:
            return failure(74, f"{setting}={name}")
        resolved.append(field_name)
    phone, priority, dialtime = resolved
    return replace(rules, phone_field=phone, priority_field=priority, dialtime_field=dialtime)


def check_pairs(
    campaign: Campaign, pairs: Sequence[tuple[str, str]]
) -> dict[str, str] | ImportResult:
    """Map ``(name, value)`` pairs to field names and check required fields (74, 76)."""
    fields: dict[str, str] = {}
    unknown = [name for name, _ in pairs if campaign.resolve(name) is None]
    if unknown:
        return failure(74, ",".join(unknown))
    for name, value in pairs:
        field_name = campaign.resolve(name)
        assert field_name is not None
        fields[field_name] = value
    for spec in campaign.fields:
        if (spec.required or spec.name == campaign.key_field) and not fields.get(spec.name):
            return failure(76, spec.name)
    return fields


def parse_context(campaign: Campaign, context: str) -> dict[str, str] | ImportResult:
    """Decode a ``source=data`` context: empty → 71, malformed → 75, then ``check_pairs``."""
    if not context:
        return failure(71)
    try:
        pairs = decode_record(context)
    except RecordError:
        return failure(75)
    return check_pairs(campaign, pairs)


def _duplicate_code(stored: Customer, fields: Mapping[str, str]) -> int:
    # 81 "duplicate data": the record adds nothing; 82 "duplicate phone number": same key,
    # different data, kept unchanged because of dupway=skip or changepackage.
    same = all(stored.fields.get(name, "") == value for name, value in fields.items())
    return 81 if same else 82


def _dial(
    store: Store,
    campaign: Campaign,
    customer_id: int,
    fields: Mapping[str, str],
    rules: ImportOptions,
) -> bool:
    phone = fields.get(rules.phone_field, "") if rules.phone_field else ""
    if not phone:
        return False
    priority = fields.get(rules.priority_field, "") if rules.priority_field else ""
    dialtime = fields.get(rules.dialtime_field, "") if rules.dialtime_field else ""
    store.add_to_diallist(campaign.id, customer_id, phone, priority, dialtime)
    return True


def import_record(
    store: Store, campaign: Campaign, fields: Mapping[str, str], rules: ImportOptions
) -> ImportResult:
    """Import checked ``fields`` into ``campaign`` following ``rules``."""
    key = fields[campaign.key_field]
    stored = store.find_customer(campaign.table, key)
    if stored is None:
        customer_id = store.insert_customer(campaign.table, key, campaign.id, fields)
        if _dial(store, campaign, customer_id, fields, rules):
            return ImportResult(True, (83,))
        return ImportResult(True, (84,))

    customer = stored
    if stored.package != campaign.id:
        move = rules.changepackage is ChangePackage.REASSIGN_TO_CURRENT or (
            rules.changepackage is ChangePackage.UNASSIGN_TO_CURRENT and not stored.package
        )
        if not move:
            return ImportResult(False, (_duplicate_code(stored, fields),))
        customer = replace(customer, package=campaign.id)

    codes: list[int] = []
    if rules.dupway is DupWay.UPDATE:
        customer = replace(customer, fields={**customer.fields, **fields})
        codes.append(78)
    else:
        codes.append(_duplicate_code(stored, fields))
    if rules.resetstatus:
        customer = replace(customer, status="")
        codes.append(77)
    if rules.emptyagent:
        customer = replace(customer, agent="")
        codes.append(79)
    # dupway=update always writes, as the real server's UPDATE does, even with the same data.
    written = customer != stored or rules.dupway is DupWay.UPDATE
    if written:
        store.update_customer(customer)
    # ignoreSuccess looks at the status the customer had when the record arrived.
    wants_dial = rules.dupdiallist is DupDialList.ALL or (
        rules.dupdiallist is DupDialList.IGNORE_SUCCESS and stored.status != SUCCESS_STATUS
    )
    if wants_dial and _dial(store, campaign, customer.id, customer.fields, rules):
        codes.append(80)
    success = written or 80 in codes
    return ImportResult(success, tuple(codes))
