-- server_budgets.reserved_at: the database server's clock at the last reservation. A clock
-- set back (an NTP step, a restored virtual machine) would leave next_at far ahead of the
-- new "now" and stall every runner of the server for as long as the clock went back: the
-- reservation moves next_at back by as much, so the calls already granted keep their
-- spacing and none waits for the clock to catch up (bulkimport/storage/postgres/budget.py).

ALTER TABLE server_budgets ADD COLUMN reserved_at DOUBLE PRECISION;
