-- Remote imports (`bulkimport remote`): one row per `source=http|ftp` call.
--
-- The server fetches the file itself, so there are no rows to queue: what is kept is what was
-- asked and what the server answered. `url` is the file's URL with any credentials taken out;
-- the file's password is never stored.

CREATE TABLE remote_imports (
    id INTEGER PRIMARY KEY,
    created_at REAL NOT NULL,
    source TEXT NOT NULL CHECK (source IN ('http', 'ftp')),
    url TEXT NOT NULL,
    -- Server URL + org + campaign, as for jobs.
    target_key TEXT NOT NULL,
    exetime TEXT NOT NULL DEFAULT '',
    delrow TEXT NOT NULL DEFAULT '',
    -- The server's import job id, when it accepted the import.
    server_job_id TEXT,
    state TEXT NOT NULL CHECK (state IN ('accepted', 'refused', 'failed')),
    code TEXT,
    message TEXT,
    attempts INTEGER NOT NULL DEFAULT 1
);
