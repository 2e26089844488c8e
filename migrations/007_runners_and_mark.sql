-- A bulkimport database says so in its header, claims name their runner, and a job's
-- target is kept as fields.
--
-- 1. application_id ("BIMP"): bulkimport refuses to write into a file that does not carry it
--    (bulkimport.storage.sqlite.database.inspect_file); databases of version 6 and older are
--    recognised by their tables and marked here.
-- 2. runners: one row per process that held the runner lock. A claimed row names its runner,
--    so that recovery gives back only the rows of runners that are gone, never those of a
--    live one (with the SQLite storage, the lock holder is the only live runner).
-- 3. target_url, target_org, target_campaign: what target_key joins into one text, kept
--    apart so that nothing has to split it again.

PRAGMA application_id = 1112100176;

CREATE TABLE runners (
    id INTEGER PRIMARY KEY,
    pid INTEGER NOT NULL,
    host TEXT NOT NULL,
    started_at REAL NOT NULL,
    seen_at REAL NOT NULL,
    ended_at REAL
);

ALTER TABLE rows ADD COLUMN runner_id INTEGER;

ALTER TABLE jobs ADD COLUMN target_url TEXT NOT NULL DEFAULT '';

ALTER TABLE jobs ADD COLUMN target_org TEXT NOT NULL DEFAULT '';

ALTER TABLE jobs ADD COLUMN target_campaign TEXT NOT NULL DEFAULT '';

UPDATE jobs SET
    target_url = coalesce(json_extract(settings_json, '$.url'), ''),
    target_org = coalesce(json_extract(settings_json, '$.org'), ''),
    target_campaign = coalesce(CAST(json_extract(settings_json, '$.campaign') AS TEXT), '');
