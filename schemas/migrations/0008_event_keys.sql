-- An audited event (an approval, a regression report: recordEvent) carries the key of the step that recorded it
-- in details.eventKey, so a local activity re-run on replay, or retried after its commit, finds its entry instead
-- of appending a second one. Unique: one entry per key, whatever races.
CREATE UNIQUE INDEX "audit_log_event_key" ON "audit_log" USING btree (("details"->>'eventKey')) WHERE "details" ? 'eventKey';
