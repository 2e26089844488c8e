-- Less work per row sent: every row sent changes state twice (pending → in_flight → done),
-- and each change paid for more than the row itself.
--
-- 1. The per-row trigger that counted state changes fired two UPDATEs of job_counts per
--    change. Queue now counts the rows each of its statements moves, once per statement,
--    in the same transaction (_count_params in queue.py); every write to rows goes through Queue.
--    (Deleting rows is rare and stays counted by rows_count_delete.)
-- 2. rows_done_record indexed the record text of every done row, for --skip-unchanged only:
--    a random B-tree insert per row sent, for every user. Queue.mark_unchanged_skipped builds
--    it the first time it is needed and it is kept from then on, so only databases that do
--    incremental loads pay for it.

DROP TRIGGER rows_count_update;

DROP INDEX rows_done_record;
