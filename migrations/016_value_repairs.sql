-- Repairs the reader makes to any value, not only to phone numbers, counted with the job as
-- migration 008's are (bulkimport.states.RepairKind):
--
-- 1. repaired_text_formula: Excel's text formula ="0138..." taken down to the text inside.
-- 2. repaired_control_padding: control characters around a value (a trailing \r, a form
--    feed) taken away.
--
-- What the reader learned from the head of the file (each phone field's usual length) and
-- what --allow lets through are kept in the job's format_json: a resume judges each row as
-- the first run did, with no column of their own.

ALTER TABLE jobs ADD COLUMN repaired_text_formula INTEGER NOT NULL DEFAULT 0;

ALTER TABLE jobs ADD COLUMN repaired_control_padding INTEGER NOT NULL DEFAULT 0;
