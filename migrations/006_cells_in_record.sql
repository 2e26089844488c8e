-- Rows stored once: a pending row whose encoded record holds every one of its cells (the
-- file's columns all sent under names of their own, no constants added) is stored with an
-- empty `cells` text, and its cells are rebuilt from `record` when a report needs them
-- (bulkimport.rows.CELLS_IN_RECORD, Batch.record_width). For most files that is a third
-- less to write while reading.
--
-- No table changes: this version number keeps a bulkimport that does not know the empty
-- form from opening a database that holds it ("written by a newer bulkimport").
SELECT 1;
