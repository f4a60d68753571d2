/**
 * The installation's ed25519 key and DSSE envelopes (https://github.com/secure-systems-lab/dsse).
 * Signatures are over PAE(payloadType, payload), so a payload can never be re-read as another type; each
 * carries the key id (sha256 of the public key's SPKI DER) so a verifier knows which key to use.
 */
import { createPrivateKey, createPublicKey, generateKeyPairSync, sign as edSign, verify as edVerify, type KeyObject } from 'node:crypto';
import { chmodSync, existsSync, linkSync, mkdirSync, readFileSync, renameSync, statSync, unlinkSync, writeFileSync } from 'node:fs';
import { join } from 'node:path';
import { randomBytes } from 'node:crypto';
import { sha256Hex } from './canonical.ts';

/** A public key that can check signatures. */
export interface Verifier {
  keyId: string;
  publicKeyPem: string;
  verify(data: Uint8Array, signature: Uint8Array): boolean;
}

/** The installation's signing key pair. */
export interface Keys extends Verifier {
  sign(data: Uint8Array): Uint8Array;
}

/** A DSSE envelope as stored on disk (JSON). */
export interface Envelope {
  payload: string;
  payloadType: string;
  signatures: { keyid: string; sig: string }[];
}

/** The payload type of a version manifest. */
export const MANIFEST_PAYLOAD_TYPE = 'application/vnd.perennial.manifest+json';
/** The payload type of a signed audit Merkle root. */
export const AUDIT_ROOT_PAYLOAD_TYPE = 'application/vnd.perennial.audit-root+json';

const PRIVATE_FILE = 'ed25519.key';
const PUBLIC_FILE = 'ed25519.pub.pem';

function verifierOf(publicKey: KeyObject): Verifier {
  const der = publicKey.export({ type: 'spki', format: 'der' });
  return {
    keyId: sha256Hex(der),
    publicKeyPem: publicKey.export({ type: 'spki', format: 'pem' }).toString(),
    verify(data, signature) {
      try {
        return edVerify(null, data, publicKey, signature);
      } catch {
        return false;
      }
    },
  };
}

/** A verifier for a PEM public key, e.g. one exported by another installation or kept from before a rotation. */
export function verifierFromPem(pem: string): Verifier {
  const key = createPublicKey(pem);
  if (key.asymmetricKeyType !== 'ed25519') throw new Error(`expected an ed25519 public key, got ${key.asymmetricKeyType ?? 'unknown'}`);
  return verifierOf(key);
}

function keysOf(privateKey: KeyObject): Keys {
  if (privateKey.asymmetricKeyType !== 'ed25519') throw new Error(`expected an ed25519 private key, got ${privateKey.asymmetricKeyType ?? 'unknown'}`);
  const verifier = verifierOf(createPublicKey(privateKey));
  return { ...verifier, sign: (data) => new Uint8Array(edSign(null, data, privateKey)) };
}

/** Generates a key pair in memory only (tests, and third parties checking that foreign keys are refused). */
export function generateKeys(): Keys {
  return keysOf(generateKeyPairSync('ed25519').privateKey);
}

/**
 * Loads the key pair from `dir`, generating it on first use: the private key in `ed25519.key` (mode 0600),
 * the public key exported as `ed25519.pub.pem` for third parties. Safe when two processes start at once.
 */
export function loadOrCreateKeys(dir: string): Keys {
  mkdirSync(dir, { recursive: true, mode: 0o700 });
  const privatePath = join(dir, PRIVATE_FILE);
  if (!existsSync(privatePath)) {
    const pem = generateKeyPairSync('ed25519').privateKey.export({ type: 'pkcs8', format: 'pem' }).toString();
    const temp = join(dir, `.${PRIVATE_FILE}.${process.pid}.${randomBytes(6).toString('hex')}`);
    writeFileSync(temp, pem, { mode: 0o600, flag: 'wx' });
    try {
      // link() fails when the name exists: if another process won the race, we use its key, not ours.
      linkSync(temp, privatePath);
    } catch (err) {
      if ((err as NodeJS.ErrnoException).code !== 'EEXIST') throw err;
    } finally {
      unlinkSync(temp);
    }
  }
  const mode = statSync(privatePath).mode & 0o777;
  if (mode & 0o077) {
    throw new Error(`${privatePath} is readable by others (mode ${mode.toString(8)}); run: chmod 600 ${privatePath}`);
  }
  const keys = keysOf(createPrivateKey(readFileSync(privatePath)));
  const publicPath = join(dir, PUBLIC_FILE);
  if (!existsSync(publicPath) || readFileSync(publicPath, 'utf8') !== keys.publicKeyPem) {
    const temp = join(dir, `.${PUBLIC_FILE}.${process.pid}.${randomBytes(6).toString('hex')}`);
    writeFileSync(temp, keys.publicKeyPem, { mode: 0o644 });
    renameSync(temp, publicPath);
  }
  chmodSync(dir, 0o700);
  return keys;
}

/** DSSE's pre-authentication encoding: `DSSEv1 <len(type)> <type> <len(body)> <body>`, lengths in bytes. */
export function pae(payloadType: string, payload: Uint8Array): Uint8Array {
  const type = Buffer.from(payloadType, 'utf8');
  return Buffer.concat([Buffer.from(`DSSEv1 ${type.length} `), type, Buffer.from(` ${payload.length} `), payload]);
}

/** Signs `payload` into a DSSE envelope. */
export function signEnvelope(keys: Keys, payloadType: string, payload: Uint8Array): Envelope {
  const sig = keys.sign(pae(payloadType, payload));
  return {
    payload: Buffer.from(payload).toString('base64'),
    payloadType,
    signatures: [{ keyid: keys.keyId, sig: Buffer.from(sig).toString('base64') }],
  };
}

/** The result of checking an envelope: the payload when a trusted key signed it, otherwise why not. */
export type EnvelopeCheck = { ok: true; payload: Buffer; keyId: string } | { ok: false; reason: string };

const BASE64 = /^[A-Za-z0-9+/]*={0,2}$/;

/**
 * Checks that `envelope` has the expected payload type and at least one valid signature by a trusted key.
 * Never throws on malformed input: a tampered envelope is a finding, not a crash.
 */
export function verifyEnvelope(envelope: unknown, payloadType: string, trusted: readonly Verifier[]): EnvelopeCheck {
  if (typeof envelope !== 'object' || envelope === null) return { ok: false, reason: 'not a DSSE envelope' };
  const env = envelope as Partial<Envelope>;
  if (env.payloadType !== payloadType) return { ok: false, reason: `payload type is ${JSON.stringify(env.payloadType)}, expected ${payloadType}` };
  if (typeof env.payload !== 'string' || !BASE64.test(env.payload)) return { ok: false, reason: 'payload is not base64' };
  if (!Array.isArray(env.signatures) || env.signatures.length === 0) return { ok: false, reason: 'no signatures' };
  const payload = Buffer.from(env.payload, 'base64');
  const message = pae(payloadType, payload);
  const reasons: string[] = [];
  for (const s of env.signatures as unknown[]) {
    const { keyid, sig } = (s ?? {}) as { keyid?: unknown; sig?: unknown };
    if (typeof keyid !== 'string' || typeof sig !== 'string' || !BASE64.test(sig)) {
      reasons.push('malformed signature entry');
      continue;
    }
    const key = trusted.find((k) => k.keyId === keyid);
    if (!key) {
      reasons.push(`signed by unknown key ${keyid.slice(0, 16)}`);
      continue;
    }
    if (key.verify(message, Buffer.from(sig, 'base64'))) return { ok: true, payload, keyId: keyid };
    reasons.push(`signature by key ${keyid.slice(0, 16)} does not verify`);
  }
  return { ok: false, reason: reasons.join('; ') };
}
