"""The sandbox: a local stand-in for the vendor's ``/asterccinterfaces`` Import endpoint.

It answers as the real server does (credentials, campaigns, fields, duplicates, dial list,
remote imports) over its own SQLite database, with optional faults, and shows what arrived
under ``/sandbox/*``. Start one with ``serve_sandbox(SandboxConfig(...))`` or
``bulkimport sandbox``.
"""

from bulkimport.campaign import (
    Account,
    Agent,
    Campaign,
    FieldSpec,
    Schema,
    SeedCustomer,
    default_schema,
    load_schema,
)
from bulkimport.sandbox.faults import Faults
from bulkimport.sandbox.server import SandboxConfig, SandboxHandle, serve_sandbox

__all__ = [
    "Account",
    "Agent",
    "Campaign",
    "Faults",
    "FieldSpec",
    "SandboxConfig",
    "SandboxHandle",
    "Schema",
    "SeedCustomer",
    "default_schema",
    "load_schema",
    "serve_sandbox",
]
