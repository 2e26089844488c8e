"""A campaign schema: the fields of each campaign (what `check --schema` checks a file
against), and the organisation, accounts and agents the sandbox logs in.

A schema is a TOML file that a user writes to mirror their real campaign (see
``samples/sandbox-schema.toml``); ``default_schema()`` is the built-in one that matches the
README's quickstart and ``samples/``.
"""

from __future__ import annotations

import tomllib
from collections.abc import Mapping
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from bulkimport.errors import ConfigError


@dataclass(frozen=True)
class FieldSpec:
    """One column of a campaign's customer table: a record may name it either way."""

    name: str
    display: str = ""
    required: bool = False


@dataclass(frozen=True)
class Campaign:
    """A campaign (a customer package) and the table its customers live in.

    Campaigns with ``main_table`` share one customer table: a customer found there may belong
    to another package, which is what ``changepackage`` decides about.
    """

    id: str
    name: str
    fields: tuple[FieldSpec, ...]
    key_field: str
    main_table: bool = True

    @property
    def table(self) -> str:
        return "main" if self.main_table else f"campaign:{self.id}"

    def resolve(self, name: str) -> str | None:
        """The field name for ``name`` (a field name or a display name); ``None`` if unknown."""
        for spec in self.fields:
            if name == spec.name or (spec.display and name == spec.display):
                return spec.name
        return None

    @property
    def field_names(self) -> tuple[str, ...]:
        return tuple(spec.name for spec in self.fields)


@dataclass(frozen=True)
class Agent:
    """An agent login. ``campaigns`` empty means every campaign."""

    number: str
    password: str
    enabled: bool = True
    campaigns: tuple[str, ...] = ()


@dataclass(frozen=True)
class Account:
    """An administrator account (``usertype=account``)."""

    name: str
    password: str


@dataclass(frozen=True)
class SeedCustomer:
    """A customer present before any import (e.g. one already called with ``success``)."""

    campaign: str
    fields: Mapping[str, str]
    package: str | None = None  # None: the campaign's own package; "" : no package
    status: str = ""
    agent: str = ""


@dataclass(frozen=True)
class Schema:
    """Everything the sandbox checks a request against."""

    org: str
    accounts: tuple[Account, ...]
    agents: tuple[Agent, ...]
    campaigns: tuple[Campaign, ...]
    customers: tuple[SeedCustomer, ...] = field(default=())

    def campaign(self, campaign_id: str) -> Campaign | None:
        return next((c for c in self.campaigns if c.id == campaign_id), None)

    def agent(self, number: str) -> Agent | None:
        return next((a for a in self.agents if a.number == number), None)

    def account(self, name: str) -> Account | None:
        return next((a for a in self.accounts if a.name == name), None)


DEFAULT_FIELDS: tuple[FieldSpec, ...] = (
    FieldSpec("customername", "name"),
    FieldSpec("phone1", "phone1", required=True),
    FieldSpec("phone2", "phone2"),
    FieldSpec("email", "email"),
    FieldSpec("company", "company"),
    FieldSpec("city", "city"),
    FieldSpec("address", "address"),
    FieldSpec("priority", "priority"),
    FieldSpec("dialtime", "dialtime"),
    FieldSpec("memo", "memo"),
)


def default_schema() -> Schema:
    """Org ``demo``; account ``admin``/``secret``; agent ``1001``/``1001``; campaigns 1 and 2.

    Both campaigns share the main customer table and use ``phone1`` as the duplicate key.
    """
    return Schema(
        org="demo",
        accounts=(Account("admin", "secret"),),
        agents=(Agent("1001", "1001"),),
        campaigns=(
            Campaign("1", "Spring leads", DEFAULT_FIELDS, "phone1"),
            Campaign("2", "Renewals", DEFAULT_FIELDS, "phone1"),
        ),
    )


def _str(table: Mapping[str, Any], key: str, where: str, default: str | None = None) -> str:
    value = table.get(key, default)
    if value is None:
        raise ConfigError(f"{where}: '{key}' is missing")
    if isinstance(value, bool) or not isinstance(value, str | int):
        raise ConfigError(f"{where}: '{key}' must be a string")
    return str(value)


def _tables(doc: Mapping[str, Any], key: str) -> list[Mapping[str, Any]]:
    value = doc.get(key, [])
    if not isinstance(value, list) or not all(isinstance(v, dict) for v in value):
        raise ConfigError(f"'{key}' must be an array of tables ([[{key}]])")
    return value


def _campaign(table: Mapping[str, Any], index: int) -> Campaign:
    where = f"campaigns[{index}]"
    cid = _str(table, "id", where)
    raw_fields = table.get("fields")
    if raw_fields is None:
        fields = DEFAULT_FIELDS
    else:
        if not isinstance(raw_fields, list) or not raw_fields:
            raise ConfigError(f"{where}: 'fields' must be a non-empty array of tables")
        fields = tuple(
            FieldSpec(
                _str(f, "name", f"{where}.fields[{i}]"),
                _str(f, "display", f"{where}.fields[{i}]", ""),
                bool(f.get("required", False)),
            )
            for i, f in enumerate(raw_fields)
        )
    names = [f.name for f in fields]
    if len(set(names)) != len(names):
        raise ConfigError(f"{where}: field names must be unique")
    key = _str(table, "key_field", where, next((f.name for f in fields if f.required), names[0]))
    if key not in names:
        raise ConfigError(f"{where}: key_field {key!r} is not one of its fields")
    return Campaign(
        id=cid,
        name=_str(table, "name", where, f"Campaign {cid}"),
        fields=fields,
        key_field=key,
        main_table=bool(table.get("main_table", True)),
    )


def parse_schema(doc: Mapping[str, Any]) -> Schema:
    """Build a schema from a parsed TOML document; ``ConfigError`` says what is wrong."""
    campaigns = tuple(_campaign(t, i) for i, t in enumerate(_tables(doc, "campaigns")))
    if not campaigns:
        raise ConfigError("the schema defines no campaign ([[campaigns]])")
    if len({c.id for c in campaigns}) != len(campaigns):
        raise ConfigError("campaign ids must be unique")
    customers = []
    for i, t in enumerate(_tables(doc, "customers")):
        where = f"customers[{i}]"
        raw = t.get("fields", {})
        if not isinstance(raw, dict):
            raise ConfigError(f"{where}: 'fields' must be a table")
        package = t.get("package")
        customers.append(
            SeedCustomer(
                campaign=_str(t, "campaign", where),
                fields={str(k): str(v) for k, v in raw.items()},
                package=None if package is None else str(package),
                status=_str(t, "status", where, ""),
                agent=_str(t, "agent", where, ""),
            )
        )
    return Schema(
        org=_str(doc, "org", "schema"),
        accounts=tuple(
            Account(_str(t, "name", "accounts"), _str(t, "password", "accounts"))
            for t in _tables(doc, "accounts")
        ),
        agents=tuple(
            Agent(
                _str(t, "number", "agents"),
                _str(t, "password", "agents"),
                bool(t.get("enabled", True)),
                tuple(str(c) for c in t.get("campaigns", [])),
            )
            for t in _tables(doc, "agents")
        ),
        campaigns=campaigns,
        customers=tuple(customers),
    )


def load_schema(path: str | Path) -> Schema:
    """Read a schema TOML file (see ``samples/sandbox-schema.toml``)."""
    try:
        with open(path, "rb") as handle:
            doc = tomllib.load(handle)
    except OSError as exc:
        raise ConfigError(f"cannot read the schema file {path}: {exc.strerror}") from exc
    except tomllib.TOMLDecodeError as exc:
        raise ConfigError(f"the schema file {path} is not valid TOML: {exc}") from exc
    return parse_schema(doc)
