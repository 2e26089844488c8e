-- Why a job stopped, kept as facts (bulkimport.events.StopFacts as JSON: the cause, the
-- vendor's code, the HTTP status, the setting to fix, the outage's start, the counts of
-- calls answered or maybe processed) rather than as a sentence: the words are made when
-- the job is shown, in one module (bulkimport.messages). Jobs stopped before this keep
-- their sentence in `message`; a new stop stores facts and clears it.

ALTER TABLE jobs ADD COLUMN stop_facts TEXT;
