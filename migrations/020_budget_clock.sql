-- server_budgets.reserved_at: the clock's time at the last reservation. A clock set back
-- (an NTP step, a virtual machine restored) would leave next_at far ahead of the new "now"
-- and stall every runner of the server for as long as the clock went back: the reservation
-- moves next_at back by as much, so the calls already granted keep their spacing and none
-- waits for the clock to catch up (bulkimport/storage/sqlite/budget.py).

ALTER TABLE server_budgets ADD COLUMN reserved_at REAL;
