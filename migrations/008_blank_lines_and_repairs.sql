-- What reading a file found besides its rows, kept with the job so that a resumed or a later
-- process can say it ("3 blank lines skipped", "30 phone numbers repaired (.0 removed)").
--
-- 1. blank_lines: lines that are no record (empty, spaces, Excel's rows of bare delimiters).
--    They are counted, not stored as rows; with the rows they account for every line read.
-- 2. repaired_*: phone numbers the reader repaired before sending them, one column per kind
--    (bulkimport.states.RepairKind): a trailing .0, a leading '.
--
-- Like read_offset and total_rows, they move with each batch of rows, in its transaction
-- (bulkimport.storage.sqlite.ingest.store_batch): never counted twice across a resume.

ALTER TABLE jobs ADD COLUMN blank_lines INTEGER NOT NULL DEFAULT 0;

ALTER TABLE jobs ADD COLUMN repaired_decimal INTEGER NOT NULL DEFAULT 0;

ALTER TABLE jobs ADD COLUMN repaired_apostrophe INTEGER NOT NULL DEFAULT 0;
