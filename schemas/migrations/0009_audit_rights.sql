-- Signed roots get one way in, as audit entries do: perennial_audit_record_root(), a SECURITY DEFINER function.
-- The application role loses INSERT on audit_roots (db.ts): a row it wrote itself (any frontier, any hash) made
-- every later seal refuse and `audit verify` fail, and the append-only triggers kept it there for good. The
-- function numbers the row itself and records only a root that is true of the log (its last entry's hash, a
-- frontier that hashes to its root), with the signed envelope, so a row without a valid signature is told
-- apart (and passed over) by whoever holds the installation's public key.
ALTER TABLE "audit_roots" ADD COLUMN "envelope" jsonb;
--> statement-breakpoint
ALTER TABLE "audit_roots" ADD CONSTRAINT "audit_roots_envelope_object" CHECK ("audit_roots"."envelope" is null or jsonb_typeof("audit_roots"."envelope") = 'object');
--> statement-breakpoint
CREATE FUNCTION "perennial_audit_record_root"(p_envelope jsonb, p_frontier jsonb)
RETURNS bigint
LANGUAGE plpgsql VOLATILE SECURITY DEFINER SET search_path = public, pg_temp AS $$
DECLARE
  v_payload jsonb;
  v_size bigint;
  v_root text;
  v_last text;
  v_key text;
  v_at timestamptz;
  v_prev record;
  v_head text;
  v_n int;
  v_acc bytea;
  v_seq bigint;
BEGIN
  IF p_envelope IS NULL OR jsonb_typeof(p_envelope) <> 'object'
     OR p_envelope->>'payloadType' IS DISTINCT FROM 'application/vnd.perennial.audit-root+json'
     OR jsonb_typeof(p_envelope->'signatures') IS DISTINCT FROM 'array' OR jsonb_array_length(p_envelope->'signatures') = 0 THEN
    RAISE EXCEPTION 'audit root: not a signed audit-root envelope' USING ERRCODE = 'invalid_parameter_value';
  END IF;
  BEGIN
    v_payload := convert_from(decode(p_envelope->>'payload', 'base64'), 'UTF8')::jsonb;
    v_size := (v_payload->>'treeSize')::bigint;
    v_at := (v_payload->>'exportedAt')::timestamptz;
  EXCEPTION WHEN others THEN
    RAISE EXCEPTION 'audit root: the envelope''s payload is not an audit root' USING ERRCODE = 'invalid_parameter_value';
  END;
  v_root := v_payload->>'rootHash';
  v_last := v_payload->>'lastHash';
  v_key := v_payload->>'keyId';
  IF v_payload->>'_type' IS DISTINCT FROM 'perennial.audit-root/v1' OR v_size IS NULL OR v_size < 0 OR v_at IS NULL
     OR v_root !~ '^[0-9a-f]{64}$' OR v_last !~ '^[0-9a-f]{64}$' OR v_key IS NULL OR length(v_key) = 0
     OR NOT EXISTS (SELECT 1 FROM jsonb_array_elements(p_envelope->'signatures') s WHERE s->>'keyid' = v_key) THEN
    RAISE EXCEPTION 'audit root: malformed payload, or not signed by the key it names' USING ERRCODE = 'invalid_parameter_value';
  END IF;
  -- One sealer at a time (LOCKS.seal in db.ts); the caller holds it already, advisory locks stack.
  PERFORM pg_advisory_xact_lock(1885696622, 3);
  SELECT r.seq, r.tree_size INTO v_prev FROM public.audit_roots r ORDER BY r.seq DESC LIMIT 1;
  IF v_size < coalesce(v_prev.tree_size, 0) THEN
    RAISE EXCEPTION 'audit root over % entries: the last root already covers %', v_size, v_prev.tree_size USING ERRCODE = 'invalid_parameter_value';
  END IF;
  IF v_size = 0 THEN
    v_head := '0000000000000000000000000000000000000000000000000000000000000000';
  ELSE
    SELECT l.hash INTO v_head FROM public.audit_log l WHERE l.seq = v_size;
  END IF;
  IF v_head IS DISTINCT FROM v_last THEN
    RAISE EXCEPTION 'audit root over % entries: entry % is %', v_size, v_size, CASE WHEN v_head IS NULL THEN 'missing' ELSE 'not the one it names' END
      USING ERRCODE = 'invalid_parameter_value';
  END IF;
  -- The frontier (one subtree root per set bit of the size, largest first) must hash to the root (RFC 6962).
  v_n := length(replace(v_size::bit(64)::text, '0', ''));
  IF p_frontier IS NULL OR jsonb_typeof(p_frontier) <> 'array' OR jsonb_array_length(p_frontier) <> v_n
     OR EXISTS (SELECT 1 FROM jsonb_array_elements(p_frontier) f WHERE jsonb_typeof(f) <> 'string' OR f #>> '{}' !~ '^[0-9a-f]{64}$') THEN
    RAISE EXCEPTION 'audit root over % entries: its frontier must be % hashes', v_size, v_n USING ERRCODE = 'invalid_parameter_value';
  END IF;
  IF v_n = 0 THEN
    v_acc := sha256(''::bytea);
  ELSE
    v_acc := decode(p_frontier->>(v_n - 1), 'hex');
    FOR i IN REVERSE v_n - 2 .. 0 LOOP
      v_acc := sha256('\x01'::bytea || decode(p_frontier->>i, 'hex') || v_acc);
    END LOOP;
  END IF;
  IF encode(v_acc, 'hex') <> v_root THEN
    RAISE EXCEPTION 'audit root over % entries: its frontier does not hash to it', v_size USING ERRCODE = 'invalid_parameter_value';
  END IF;
  v_seq := coalesce(v_prev.seq, 0) + 1;
  INSERT INTO public.audit_roots (seq, tree_size, root_hash, last_hash, frontier, key_id, signed_at, envelope)
    VALUES (v_seq, v_size, v_root, v_last, p_frontier, v_key, v_at, p_envelope);
  RETURN v_seq;
END
$$;
--> statement-breakpoint
REVOKE ALL ON FUNCTION "perennial_audit_record_root"(jsonb, jsonb) FROM PUBLIC;
--> statement-breakpoint
-- A training run is started once and finished once: its identity (key, line, parent, recipe, seed, start) never
-- changes, how it ended (status, compute, checkpoints, error) is written only while it is running, and the version
-- it produced is set once. Checked for every role, owner included, as history is (0001); db.ts also narrows the
-- application role's UPDATE to the columns a finish and a version write.
CREATE FUNCTION "perennial_training_run_guard"() RETURNS trigger
LANGUAGE plpgsql AS $$
BEGIN
  IF (NEW.id, NEW.line_id, NEW.key, NEW.parent_number, NEW.recipe, NEW.seed, NEW.started_at)
     IS DISTINCT FROM (OLD.id, OLD.line_id, OLD.key, OLD.parent_number, OLD.recipe, OLD.seed, OLD.started_at) THEN
    RAISE EXCEPTION 'training run %: its key, line, parent, recipe, seed and start are not rewritten', OLD.key
      USING ERRCODE = 'insufficient_privilege';
  END IF;
  IF OLD.status <> 'running' AND (NEW.status, NEW.steps, NEW.tokens, NEW.flops, NEW.wall_ms, NEW.backend, NEW.final_loss,
      NEW.artifact_digest, NEW.checkpoints, NEW.error, NEW.finished_at)
     IS DISTINCT FROM (OLD.status, OLD.steps, OLD.tokens, OLD.flops, OLD.wall_ms, OLD.backend, OLD.final_loss,
      OLD.artifact_digest, OLD.checkpoints, OLD.error, OLD.finished_at) THEN
    RAISE EXCEPTION 'training run % is %: how it ended (status, compute, checkpoints) is not rewritten', OLD.key, OLD.status
      USING ERRCODE = 'insufficient_privilege';
  END IF;
  IF OLD.version_id IS NOT NULL AND NEW.version_id IS DISTINCT FROM OLD.version_id THEN
    RAISE EXCEPTION 'training run % already produced a version', OLD.key USING ERRCODE = 'insufficient_privilege';
  END IF;
  RETURN NEW;
END
$$;
--> statement-breakpoint
CREATE TRIGGER "training_runs_finished_once" BEFORE UPDATE ON "training_runs"
  FOR EACH ROW EXECUTE FUNCTION "perennial_training_run_guard"();
