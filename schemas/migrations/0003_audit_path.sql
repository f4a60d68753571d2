-- The audit log gets one way in: perennial_audit_append(), a SECURITY DEFINER function owned by the schema
-- owner, which takes the chain's lock, reads the head, stamps the time and computes the hash itself. The
-- application role loses INSERT on audit_log (db.ts), so it cannot append an entry with a time, sequence
-- number or hash of its own choosing; a correctly hashed forgery has no way into the table.
--
-- The hash is sha256 of the entry's canonical JSON, byte for byte what activities/registry/canonical.ts
-- writes (keys sorted, no whitespace, ECMAScript number formatting), so `audit verify` recomputes it in
-- TypeScript unchanged.

-- ECMAScript Number::toString of a JSON number, from float8's shortest round-trip digits.
CREATE FUNCTION "perennial_canonical_number"(n numeric) RETURNS text
LANGUAGE plpgsql IMMUTABLE STRICT SET search_path = pg_catalog AS $$
DECLARE
  f float8 := n::float8;
  t text;
  neg boolean;
  mant text;
  e int := 0;
  digits text;
  k int;
  p int; -- the decimal exponent: value = 0.digits * 10^p
BEGIN
  IF f = 0 THEN RETURN '0'; END IF; -- -0 too, as JSON.stringify
  t := f::text; -- shortest round-trip digits (extra_float_digits > 0 is the default since PostgreSQL 12)
  neg := left(t, 1) = '-';
  IF neg THEN t := substr(t, 2); END IF;
  IF position('e' IN t) > 0 THEN
    mant := split_part(t, 'e', 1);
    e := split_part(t, 'e', 2)::int;
  ELSE
    mant := t;
  END IF;
  IF position('.' IN mant) > 0 THEN
    p := position('.' IN mant) - 1;
    digits := replace(mant, '.', '');
  ELSE
    p := length(mant);
    digits := mant;
  END IF;
  -- Strip leading zeros (0.001 -> digits 1, p -2) and trailing zeros (100 -> digits 1, p 3).
  WHILE left(digits, 1) = '0' LOOP digits := substr(digits, 2); p := p - 1; END LOOP;
  digits := rtrim(digits, '0');
  p := p + e;
  k := length(digits);
  IF k <= p AND p <= 21 THEN
    t := digits || repeat('0', p - k);
  ELSIF 0 < p AND p <= 21 THEN
    t := left(digits, p) || '.' || substr(digits, p + 1);
  ELSIF -6 < p AND p <= 0 THEN
    t := '0.' || repeat('0', -p) || digits;
  ELSE
    t := left(digits, 1) || CASE WHEN k > 1 THEN '.' || substr(digits, 2) ELSE '' END
      || 'e' || CASE WHEN p - 1 >= 0 THEN '+' ELSE '-' END || abs(p - 1)::text;
  END IF;
  RETURN CASE WHEN neg THEN '-' || t ELSE t END;
END
$$;
--> statement-breakpoint
-- Canonical JSON of a jsonb value (see canonical.ts). Object keys sort by UTF-16 code units there and by
-- code point here; the two orders differ only between U+E000..U+FFFF and characters beyond U+FFFF, so such
-- keys are refused rather than hashed differently.
CREATE FUNCTION "perennial_canonical_json"(v jsonb) RETURNS text
LANGUAGE plpgsql IMMUTABLE STRICT SET search_path = pg_catalog AS $$
DECLARE
  out text;
BEGIN
  CASE jsonb_typeof(v)
    WHEN 'object' THEN
      IF EXISTS (SELECT 1 FROM jsonb_object_keys(v) AS k WHERE k ~ '[\uE000-\uFFFF]') THEN
        RAISE EXCEPTION 'audit details: object keys may not contain characters U+E000..U+FFFF' USING ERRCODE = 'invalid_parameter_value';
      END IF;
      SELECT '{' || coalesce(string_agg(to_jsonb(key)::text || ':' || public.perennial_canonical_json(value), ',' ORDER BY key COLLATE "C"), '') || '}'
        INTO out FROM jsonb_each(v);
    WHEN 'array' THEN
      SELECT '[' || coalesce(string_agg(public.perennial_canonical_json(value), ',' ORDER BY i), '') || ']'
        INTO out FROM jsonb_array_elements(v) WITH ORDINALITY AS a(value, i);
    WHEN 'number' THEN
      out := public.perennial_canonical_number((v #>> '{}')::numeric);
    ELSE
      out := v::text; -- strings (escaped as JSON.stringify escapes them), true, false, null
  END CASE;
  RETURN out;
END
$$;
--> statement-breakpoint
CREATE FUNCTION "perennial_audit_append"(p_actor text, p_action text, p_subject text, p_details jsonb)
RETURNS TABLE(seq bigint, at timestamptz, prev_hash text, hash text)
LANGUAGE plpgsql VOLATILE SECURITY DEFINER SET search_path = public, pg_temp AS $$
DECLARE
  head record;
  v_seq bigint;
  v_prev text;
  v_at timestamptz := date_trunc('milliseconds', clock_timestamp()); -- the JSON carries milliseconds
  v_body text;
  v_hash text;
BEGIN
  IF p_details IS NULL OR jsonb_typeof(p_details) <> 'object' THEN
    RAISE EXCEPTION 'audit details must be a JSON object' USING ERRCODE = 'invalid_parameter_value';
  END IF;
  -- Held until the caller's transaction ends, so the entry commits or rolls back with the write it records.
  PERFORM pg_advisory_xact_lock(1885696622, 2);
  SELECT l.seq, l.hash INTO head FROM public.audit_log l ORDER BY l.seq DESC LIMIT 1;
  v_seq := coalesce(head.seq, 0) + 1;
  v_prev := coalesce(head.hash, '0000000000000000000000000000000000000000000000000000000000000000');
  v_body := '{"action":' || to_jsonb(p_action)::text
    || ',"actor":' || to_jsonb(p_actor)::text
    || ',"at":"' || to_char(v_at AT TIME ZONE 'UTC', 'YYYY-MM-DD"T"HH24:MI:SS.MS"Z"') || '"'
    || ',"details":' || public.perennial_canonical_json(p_details)
    || ',"prevHash":"' || v_prev || '"'
    || ',"seq":' || v_seq::text
    || ',"subject":' || to_jsonb(p_subject)::text || '}';
  v_hash := encode(sha256(convert_to(v_body, 'UTF8')), 'hex');
  INSERT INTO public.audit_log (seq, at, actor, action, subject, details, prev_hash, hash)
    VALUES (v_seq, v_at, p_actor, p_action, p_subject, p_details, v_prev, v_hash);
  RETURN QUERY SELECT v_seq, v_at, v_prev, v_hash;
END
$$;
--> statement-breakpoint
REVOKE ALL ON FUNCTION "perennial_audit_append"(text, text, text, jsonb) FROM PUBLIC;
--> statement-breakpoint
-- Every signed root is also recorded here (count and last root in the database as well as in roots.jsonl,
-- so deleting or truncating the file is noticed), with the Merkle frontier of the tree it signed, so the
-- next seal hashes only the entries since (O(log n) plus the tail) instead of the whole log.
CREATE TABLE "audit_roots" (
	"seq" bigint PRIMARY KEY NOT NULL,
	"tree_size" bigint NOT NULL,
	"root_hash" text NOT NULL,
	"last_hash" text NOT NULL,
	"frontier" jsonb NOT NULL,
	"key_id" text NOT NULL,
	"signed_at" timestamp with time zone NOT NULL,
	CONSTRAINT "audit_roots_seq_positive" CHECK ("audit_roots"."seq" >= 1),
	CONSTRAINT "audit_roots_tree_size_nonnegative" CHECK ("audit_roots"."tree_size" >= 0),
	CONSTRAINT "audit_roots_root_hash_format" CHECK (char_length("audit_roots"."root_hash") = 64 and "audit_roots"."root_hash" ~ '^[0-9a-f]+$'),
	CONSTRAINT "audit_roots_last_hash_format" CHECK (char_length("audit_roots"."last_hash") = 64 and "audit_roots"."last_hash" ~ '^[0-9a-f]+$'),
	CONSTRAINT "audit_roots_frontier_array" CHECK (jsonb_typeof("audit_roots"."frontier") = 'array')
);
--> statement-breakpoint
CREATE TRIGGER "audit_roots_append_only" BEFORE UPDATE OR DELETE ON "audit_roots"
  FOR EACH ROW EXECUTE FUNCTION "perennial_reject_history_change"();
--> statement-breakpoint
CREATE TRIGGER "audit_roots_no_truncate" BEFORE TRUNCATE ON "audit_roots"
  FOR EACH STATEMENT EXECUTE FUNCTION "perennial_reject_history_change"();
--> statement-breakpoint
-- A stored evaluation is reused only for the same weights, data, backend and code revision.
ALTER TABLE "evaluations" ADD COLUMN "weights_digest" text;
--> statement-breakpoint
ALTER TABLE "evaluations" ADD COLUMN "code_revision" text;
--> statement-breakpoint
ALTER TABLE "evaluations" ADD CONSTRAINT "evaluations_weights_digest_format" CHECK (char_length("evaluations"."weights_digest") = 64 and "evaluations"."weights_digest" ~ '^[0-9a-f]+$');
--> statement-breakpoint
-- The checkpoints a training run wrote or resumed from, so `perennial verify` re-hashes them with the version.
ALTER TABLE "training_runs" ADD COLUMN "checkpoints" jsonb DEFAULT '[]'::jsonb NOT NULL;
--> statement-breakpoint
ALTER TABLE "training_runs" ADD CONSTRAINT "training_runs_checkpoints_array" CHECK (jsonb_typeof("training_runs"."checkpoints") = 'array');
