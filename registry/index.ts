/** The registry layer: connections and migrations, the artifact store, keys and signatures, the Registry. */
export { ArtifactStore, assertDigest, isDigest } from './artifacts.ts';
export {
  MerkleTree,
  ROOTS_FILE,
  type AuditEntry,
  type AuditInput,
  type AuditProblem,
  type AuditRoot,
  type AuditVerification,
  type ExportedRoot,
} from './audit.ts';
export { canonicalJson, sha256Hex } from './canonical.ts';
export { DEFAULT_APP_ROLE, MIGRATIONS_FOLDER, appDatabaseUrl, connectDatabase, migrateDatabase, type AppRole, type Connection, type Database } from './db.ts';
export { openManifest, type Manifest, type ManifestFile } from './manifest.ts';
export * from './registry.ts';
export {
  AUDIT_ROOT_PAYLOAD_TYPE,
  MANIFEST_PAYLOAD_TYPE,
  generateKeys,
  loadOrCreateKeys,
  pae,
  signEnvelope,
  verifierFromPem,
  verifyEnvelope,
  type Envelope,
  type Keys,
  type Verifier,
} from './signing.ts';
