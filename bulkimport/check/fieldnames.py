"""The vendor's customer fields, and the column names files commonly give them.

A campaign of the vendor's stock install has the fields of ``campaign.DEFAULT_FIELDS``; a
record may name each by its field name (``customername``) or its display name (``name``).
Files exported from other systems name them otherwise: ``手机``, ``联系电话``, ``Mobile``,
``备注``, ``Notes``. ``VENDOR_FIELDS`` says, for each vendor field, the names a column of
it commonly has, so that ``check`` can say which ``--map`` makes a file's columns the
campaign's fields (and ``run`` can suggest it). It only suggests: nothing is renamed
unless ``--map`` says so.

Names are compared as ``normalized`` makes them: case, spaces, ``_`` and ``-`` do not count
(``Phone Number``, ``phone_number`` and ``PHONE-NUMBER`` are one name).
"""

from __future__ import annotations

import re
from collections.abc import Iterable
from dataclasses import dataclass


@dataclass(frozen=True)
class VendorField:
    """One field of the vendor's stock campaign: ``name`` as a record (and ``--map``) names
    it, the other names the campaign takes for it (``also``: its field name when ``name`` is
    its display name), and the column names that commonly hold it (``aliases``)."""

    name: str
    aliases: tuple[str, ...]
    also: tuple[str, ...] = ()
    phone: bool = False  # a phone number: the first one is the campaign's key

    @property
    def names(self) -> tuple[str, ...]:
        """The names the campaign itself takes for it."""
        return (self.name, *self.also)


VENDOR_FIELDS: tuple[VendorField, ...] = (
    VendorField(
        "name",
        (
            "姓名", "名字", "客户名称", "客户姓名", "客户名", "联系人", "全名",
            "full name", "customer name", "customer", "contact", "contact name", "client",
        ),
        also=("customername",),
    ),
    VendorField(
        "phone1",
        (
            "手机", "手机号", "手机号码", "电话", "电话号码", "联系电话", "联系方式", "移动电话",
            "phone", "mobile", "mobile phone", "mobile number", "cell", "cellphone",
            "cell phone", "tel", "telephone", "phone number", "tel1", "phone 1",
        ),
        phone=True,
    ),
    VendorField(
        "phone2",
        (
            "备用电话", "电话2", "手机2", "座机", "固定电话", "办公电话",
            "phone 2", "tel2", "mobile2", "other phone", "home phone", "work phone",
            "landline",
        ),
        phone=True,
    ),
    VendorField(
        "email", ("邮箱", "电子邮箱", "电子邮件", "邮件", "e-mail", "mail", "email address")
    ),
    VendorField(
        "company",
        ("公司", "公司名称", "单位", "工作单位", "企业", "企业名称", "organization", "organisation",
         "employer", "company name", "firm"),
    ),
    VendorField("city", ("城市", "所在城市", "地区", "town")),
    VendorField("address", ("地址", "详细地址", "联系地址", "住址", "street", "street address")),
    VendorField("priority", ("优先级",)),
    VendorField("dialtime", ("拨打时间", "外呼时间", "呼叫时间", "dial time", "call time")),
    VendorField(
        "memo",
        ("备注", "说明", "留言", "remark", "remarks", "note", "notes", "comment", "comments"),
    ),
)  # fmt: skip

_IGNORED = re.compile(r"[\s_\-]+")


def normalized(name: str) -> str:
    """``name`` as names are compared: lower case, without spaces, ``_`` or ``-``."""
    return _IGNORED.sub("", name).casefold()


_BY_NAME: dict[str, VendorField] = {
    normalized(alias): spec for spec in VENDOR_FIELDS for alias in (*spec.names, *spec.aliases)
}
_VENDOR_NAMES = frozenset(name for spec in VENDOR_FIELDS for name in spec.names)


def vendor_field(column: str) -> VendorField | None:
    """The vendor field a column of this name commonly holds, or None."""
    return _BY_NAME.get(normalized(column))


def is_vendor_name(name: str) -> bool:
    """Whether the stock campaign takes ``name`` as it is (exactly: the server compares
    names as they are)."""
    return name in _VENDOR_NAMES


def vendor_names() -> tuple[str, ...]:
    """The names a record gives the stock campaign's fields, in the campaign's order."""
    return tuple(spec.name for spec in VENDOR_FIELDS)


@dataclass(frozen=True)
class Suggestion:
    """A column to send as another field: ``--map column=field`` (``key``: how ``--map``
    names the column, by name or by position)."""

    key: str
    column: str
    field: str

    @property
    def option(self) -> str:
        """The option, quoted for a shell: ``--map '手机=phone1'``."""
        return f"--map '{self.key}={self.field}'"


def suggest_mapping(columns: Iterable[tuple[str, str, str]]) -> list[Suggestion]:
    """For each ``(key, column, field sent)`` whose field is not one the stock campaign
    takes but whose name the table knows, the ``--map`` that sends it as that field; each
    vendor field once (the first column that has it), and none for a field already sent."""
    columns = list(columns)
    taken = {field for _, _, field in columns if is_vendor_name(field)}
    taken |= {
        spec.name for spec in VENDOR_FIELDS for name in spec.also if name in taken
    }  # customername sent: name is taken
    out = []
    for key, column, field in columns:
        if is_vendor_name(field):
            continue
        spec = vendor_field(field)
        if spec is None or spec.name in taken:
            continue
        taken.add(spec.name)
        out.append(Suggestion(key, column, spec.name))
    return out
