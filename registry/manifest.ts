/**
 * Version manifests: the signed list of every file a version is made of. The payload names the line and
 * version, so a valid signature copied onto another version's record fails verification.
 */
import { z } from 'zod';
import { canonicalJson } from './canonical.ts';
import { MANIFEST_PAYLOAD_TYPE, signEnvelope, verifyEnvelope, type Envelope, type Keys, type Verifier } from './signing.ts';

/** One file of a version. `digest` is deliberately a plain string here: verification must report bad ones, not crash. */
export interface ManifestFile {
  role: string;
  digest: string;
  size: number;
}

/** The signed description of a version. */
export interface Manifest {
  _type: 'perennial.manifest/v1';
  line: string;
  version: number;
  kind: 'foundation' | 'application';
  parent: number | null;
  foundation: { line: string; version: number } | null;
  trainingRun: string | null;
  codeRevision: string;
  seed: number;
  backend: string;
  recipeDigest: string;
  drops: string[];
  compute: { tokens: number; flops: number; wallMs: number; steps: number };
  files: ManifestFile[];
  createdAt: string;
}

const ManifestShape = z.object({
  _type: z.literal('perennial.manifest/v1'),
  line: z.string(),
  version: z.number().int(),
  kind: z.enum(['foundation', 'application']),
  parent: z.number().int().nullable(),
  foundation: z.object({ line: z.string(), version: z.number().int() }).nullable(),
  trainingRun: z.string().nullable(),
  codeRevision: z.string(),
  seed: z.number(),
  backend: z.string(),
  recipeDigest: z.string(),
  drops: z.array(z.string()),
  compute: z.object({ tokens: z.number(), flops: z.number(), wallMs: z.number(), steps: z.number() }),
  files: z.array(z.object({ role: z.string(), digest: z.string(), size: z.number() })),
  createdAt: z.string(),
});

/** Files in a fixed order, so the same version always has the same manifest bytes. */
export function sortFiles(files: readonly ManifestFile[]): ManifestFile[] {
  return [...files].sort((a, b) => (a.role === b.role ? (a.digest < b.digest ? -1 : 1) : a.role < b.role ? -1 : 1));
}

/** Signs a manifest into the bytes of its DSSE envelope (canonical JSON), ready for the artifact store. */
export function signManifest(keys: Keys, manifest: Manifest): Uint8Array {
  const payload = Buffer.from(canonicalJson({ ...manifest, files: sortFiles(manifest.files), drops: [...manifest.drops].sort() }), 'utf8');
  return Buffer.from(canonicalJson(signEnvelope(keys, MANIFEST_PAYLOAD_TYPE, payload)), 'utf8');
}

/** The outcome of opening a manifest envelope. */
export type ManifestCheck = { ok: true; manifest: Manifest; keyId: string } | { ok: false; reason: string };

/** Checks the envelope's signature against the trusted keys and parses its payload; never throws. */
export function openManifest(envelopeBytes: Uint8Array, trusted: readonly Verifier[]): ManifestCheck {
  let envelope: Envelope;
  try {
    envelope = JSON.parse(Buffer.from(envelopeBytes).toString('utf8')) as Envelope;
  } catch {
    return { ok: false, reason: 'manifest envelope is not JSON' };
  }
  const check = verifyEnvelope(envelope, MANIFEST_PAYLOAD_TYPE, trusted);
  if (!check.ok) return { ok: false, reason: `manifest signature rejected: ${check.reason}` };
  let payload: unknown;
  try {
    payload = JSON.parse(check.payload.toString('utf8'));
  } catch {
    return { ok: false, reason: 'signed manifest payload is not JSON' };
  }
  const parsed = ManifestShape.safeParse(payload);
  if (!parsed.success) return { ok: false, reason: `signed manifest payload is malformed: ${parsed.error.issues[0]?.message ?? 'unknown'}` };
  return { ok: true, manifest: parsed.data as Manifest, keyId: check.keyId };
}
