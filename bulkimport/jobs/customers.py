"""Which field identifies a customer, for incremental loads and superseded jobs."""

from __future__ import annotations

from bulkimport.errors import ConfigError
from bulkimport.reader import FileFormat
from bulkimport.settings import Settings


def customer_field(settings: Settings, fmt: FileFormat) -> str | None:
    """``--customer-key``, else ``--phone-field``, else the file's first phone-like field;
    None when the file has none."""
    phones = fmt.phone_fields
    field = settings.customer_key or settings.target.options.phone_field
    return field or (phones[0] if phones else None)


def require_customer_field(settings: Settings, fmt: FileFormat) -> str:
    """``customer_field``, or the ``ConfigError`` of ``--skip-unchanged`` without one."""
    field = customer_field(settings, fmt)
    if not field:
        raise ConfigError(
            "--skip-unchanged: no field identifies a customer in this file (no phone "
            "field); name one with --customer-key FIELD"
        )
    return field
