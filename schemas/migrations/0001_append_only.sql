-- History is append-only: the audit log and the release record reject UPDATE, DELETE and TRUNCATE from
-- anyone, owner included. (The application role is also denied those privileges; a superuser can still
-- disable these triggers, which is why the audit chain's Merkle roots are signed and kept outside the database.)
CREATE FUNCTION "perennial_reject_history_change"() RETURNS trigger
LANGUAGE plpgsql AS $$
BEGIN
  RAISE EXCEPTION '% is append-only: % refused', TG_TABLE_NAME, TG_OP
    USING ERRCODE = 'insufficient_privilege', HINT = 'history is corrected by appending, never by rewriting';
END
$$;
--> statement-breakpoint
CREATE TRIGGER "audit_log_append_only" BEFORE UPDATE OR DELETE ON "audit_log"
  FOR EACH ROW EXECUTE FUNCTION "perennial_reject_history_change"();
--> statement-breakpoint
CREATE TRIGGER "audit_log_no_truncate" BEFORE TRUNCATE ON "audit_log"
  FOR EACH STATEMENT EXECUTE FUNCTION "perennial_reject_history_change"();
--> statement-breakpoint
CREATE TRIGGER "releases_append_only" BEFORE UPDATE OR DELETE ON "releases"
  FOR EACH ROW EXECUTE FUNCTION "perennial_reject_history_change"();
--> statement-breakpoint
CREATE TRIGGER "releases_no_truncate" BEFORE TRUNCATE ON "releases"
  FOR EACH STATEMENT EXECUTE FUNCTION "perennial_reject_history_change"();
