"""The SQLite storage."""

from bulkimport.storage.sqlite.store import Ingested, Job, Queue, RemoteImport, RowView

__all__ = ["Ingested", "Job", "Queue", "RemoteImport", "RowView"]
