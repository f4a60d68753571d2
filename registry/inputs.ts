/** Validation of what callers hand the registry (zod at the boundary): a bad value fails with InvalidInputError naming the field. */
import { z } from 'zod';
import { InvalidInputError } from '../schemas/contracts/errors.ts';
import { canonicalJson } from './canonical.ts';

const NAME = /^[a-z][a-z0-9_-]{0,62}$/;
const nameMessage = 'a name is 1-63 lower-case letters, digits, "-" or "_", starting with a letter';

export const Name = z.string().regex(NAME, nameMessage);
export const Digest = z.string().regex(/^[0-9a-f]{64}$/, 'a digest is 64 lower-case hex characters (sha256, no prefix)');
export const Role = z.string().regex(/^[a-z][a-z0-9_.-]{0,62}$/, 'a file role is lower-case letters, digits, ".", "-" or "_"');
export const VersionNumber = z.number().int().positive();
export const Count = z.number().int().nonnegative();
export const Actor = z.string().trim().min(1, 'an actor is required (who does this)').max(200);
export const Reason = z.string().trim().min(1, 'a reason is required').max(4000);
export const Key = z.string().trim().min(1, 'an idempotency key is required').max(500);

/** A JSON object that canonical JSON can hash (finite numbers, no NUL, plain objects). */
export const JsonObject = z.record(z.string(), z.unknown()).superRefine((value, ctx) => {
  try {
    canonicalJson(value);
  } catch (err) {
    ctx.addIssue({ code: 'custom', message: (err as Error).message });
  }
});

export const EnsureLineInput = z
  .object({
    name: Name,
    kind: z.enum(['foundation', 'application']),
    foundationLine: Name.optional(),
    modelConfig: JsonObject,
    recipe: JsonObject,
    gateRules: JsonObject,
    promotion: JsonObject.optional(),
    limits: JsonObject.optional(),
    scheduled: z.boolean().optional(),
    actor: Actor,
  })
  .refine((l) => (l.kind === 'application') === (l.foundationLine !== undefined), {
    message: 'an application line names its foundation line; a foundation line names none',
    path: ['foundationLine'],
  });

export const UpdateLineInput = z.object({
  name: Name,
  modelConfig: JsonObject.optional(),
  recipe: JsonObject.optional(),
  gateRules: JsonObject.optional(),
  promotion: JsonObject.optional(),
  limits: JsonObject.optional(),
  scheduled: z.boolean().optional(),
  upgradePolicy: z.enum(['auto', 'manual', 'off']).optional(),
  actor: Actor,
  reason: Reason,
});

export const RecordDropInput = z.object({
  line: Name,
  digest: Digest,
  source: z.string().min(1).max(500),
  status: z.enum(['accepted', 'quarantined', 'rejected']),
  counts: z.object({ records: Count, train: Count, heldOut: Count, probes: Count.optional(), rejected: Count.optional() }),
  reason: z.string().max(4000).optional(),
  storedPath: z.string().min(1).max(4096),
  ingestKey: Key.optional(),
  actor: Actor.optional(),
});

export const SetDropStatusInput = z.object({
  line: Name,
  digest: Digest,
  status: z.enum(['accepted', 'quarantined', 'rejected', 'failed']),
  reason: Reason,
  actor: Actor.optional(),
});

/** Suite names carry a drop's source name: free text without control characters or slashes. */
export const SuiteName = z
  .string()
  .min(1)
  .max(255)
  .regex(/^[^\u0000-\u001f\u007f/\\]+$/, 'a suite name may not contain control characters or slashes');

export const EnsureSuiteInput = z.object({
  line: Name,
  name: SuiteName,
  kind: Name,
  dataDigest: Digest,
  dropDigest: Digest.optional(),
  actor: Actor.optional(),
});

export const StartTrainingRunInput = z.object({
  line: Name,
  key: Key,
  parentVersion: VersionNumber.nullable(),
  recipe: JsonObject,
  seed: z.number().int(),
  drops: z.array(Digest),
  actor: Actor.optional(),
});

export const FinishTrainingRunInput = z.object({
  status: z.enum(['completed', 'failed']),
  steps: Count.default(0),
  tokens: Count.default(0),
  flops: z.number().nonnegative().default(0),
  wallMs: Count.default(0),
  backend: z.string().min(1).max(100).optional(),
  finalLoss: z.number().optional(),
  artifactDigest: Digest.optional(),
  /** The training activity's name for the same digest. */
  weightsDigest: Digest.optional(),
  /** Checkpoints written (or resumed from), so verification covers them. */
  checkpoints: z
    .array(z.object({ digest: Digest, step: Count, resumed: z.literal(true).optional() }))
    .max(100_000)
    .optional(),
  error: z.string().max(8000).optional(),
});

export const FileInput = z.object({ role: Role, digest: Digest, size: Count });

export const CreateVersionInput = z.object({
  line: Name,
  trainingRunKey: Key,
  parentVersion: VersionNumber.nullable(),
  foundationVersion: z.object({ line: Name, version: VersionNumber }).optional(),
  weightsDigest: Digest,
  files: z.array(FileInput).default([]),
  recipe: JsonObject,
  drops: z.array(Digest),
  codeRevision: z.string().trim().min(1).max(200),
  seed: z.number().int(),
  backend: z.string().trim().min(1).max(100),
  compute: z.object({ tokens: Count, flops: z.number().nonnegative(), wallMs: Count, steps: Count.optional() }),
  actor: Actor.optional(),
});

export const RecordEvaluationInput = z.object({
  line: Name,
  version: VersionNumber,
  suite: SuiteName,
  /** The line that owns the suite, when not the version's own (an application version on its foundation's suites). */
  suiteLine: Name.optional(),
  metrics: JsonObject,
  dataDigest: Digest.optional(),
  backend: z.string().min(1).max(100).optional(),
  codeRevision: z.string().min(1).max(200).optional(),
  actor: Actor.optional(),
});

export const RecordEventInput = z.object({
  actor: Actor,
  action: z.string().regex(/^[a-z][a-z_]*(\.[a-z][a-z_]*)*$/, 'an action is dotted lower-case words, e.g. regression.report'),
  line: Name,
  version: VersionNumber.optional(),
  payload: JsonObject,
  /** The recording step's key: an event recorded again under it returns the first entry (the audit holds one). */
  eventKey: Key.optional(),
});

export const OverrideGateInput = z.object({ id: z.number().int().positive(), actor: Actor, reason: Reason });

export const RecordGateDecisionInput = z.object({
  line: Name,
  key: Key,
  candidate: VersionNumber,
  champion: VersionNumber.nullable(),
  verdict: z.enum(['pass', 'fail']),
  suites: z.array(z.unknown()).superRefine((value, ctx) => {
    try {
      canonicalJson(value);
    } catch (err) {
      ctx.addIssue({ code: 'custom', message: (err as Error).message });
    }
  }),
  override: z.object({ actor: Actor, reason: Reason }).optional(),
  summary: z.string().max(8000).optional(),
  actor: Actor.optional(),
});

export const MoveChannelInput = z.object({
  line: Name,
  channel: Name,
  to: VersionNumber,
  expectedEpoch: z.number().int().nonnegative(),
  actor: Actor,
  reason: Reason,
  gateDecisionId: z.number().int().positive().optional(),
  requestKey: Key,
});

export const BindApplicationInput = z.object({
  app: Name,
  line: Name,
  channel: Name,
  policy: z.enum(['follow', 'hold']),
  pinnedVersion: VersionNumber.optional(),
  actor: Actor,
  reason: Reason.optional(),
});

/** Parses `value` with `schema`, throwing InvalidInputError that names each bad field. */
export function parseInput<S extends z.ZodType>(what: string, schema: S, value: unknown): z.infer<S> {
  const result = schema.safeParse(value);
  if (result.success) return result.data;
  const detail = result.error.issues.map((i) => (i.path.length ? `${i.path.join('.')}: ${i.message}` : i.message)).join('; ');
  throw new InvalidInputError(`${what}: ${detail}`);
}
