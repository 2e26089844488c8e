"""Where jobs and rows are kept: the interfaces (``interface``), the values they give back
(``values``), and the SQLite implementation (``sqlite``)."""

from bulkimport.storage.interface import (
    IngestStore,
    JobStore,
    RemoteLog,
    Retention,
    RowReports,
    SendQueue,
    Storage,
)
from bulkimport.storage.values import (
    Forgotten,
    Ingested,
    Job,
    Refunded,
    RemoteImport,
    RowView,
    RunnerId,
    Unchanged,
)

__all__ = [
    "Forgotten",
    "IngestStore",
    "Ingested",
    "Job",
    "JobStore",
    "Refunded",
    "RemoteImport",
    "RemoteLog",
    "Retention",
    "RowReports",
    "RowView",
    "RunnerId",
    "SendQueue",
    "Storage",
    "Unchanged",
]
