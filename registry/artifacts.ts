/**
 * The content-addressed artifact store: `<root>/sha256/<ab>/<digest>`. A digest is the only name a caller
 * can give, and it is validated as exactly 64 lower-case hex characters before it touches a path, so no
 * name (`../`, absolute, URL-encoded or NUL-laden) can reach outside the root. Writes are atomic (temp file,
 * fsync, rename, fsync of the folder); reads refuse symbolic links and re-hash what they return.
 */
import { createHash, randomBytes } from 'node:crypto';
import { constants, createReadStream } from 'node:fs';
import { chmod, lstat, mkdir, open, realpath, rename, rm, type FileHandle } from 'node:fs/promises';
import { isAbsolute, join, relative, resolve } from 'node:path';
import { ArtifactIntegrityError, InvalidDigestError } from '../schemas/contracts/errors.ts';

const DIGEST = /^[0-9a-f]{64}$/;

/** Throws InvalidDigestError unless `digest` is a sha256 hex digest; the store's only name check. */
export function assertDigest(digest: unknown): asserts digest is string {
  if (typeof digest !== 'string' || !DIGEST.test(digest)) throw new InvalidDigestError(String(digest));
}

/** True when `digest` is a sha256 hex digest. */
export function isDigest(digest: unknown): digest is string {
  return typeof digest === 'string' && DIGEST.test(digest);
}

/** What a check of one stored object found; `null` problem means intact. */
export interface ObjectCheck {
  path: string;
  problem: string | null;
  size?: number;
}

/** A content-addressed store of immutable blobs on the local disk. */
export class ArtifactStore {
  readonly root: string;
  #realRoot: Promise<string> | undefined;
  #tmpDir: Promise<string> | undefined;
  #private = false;

  constructor(root: string) {
    this.root = resolve(root);
  }

  /** The path where `digest` is stored (whether or not it exists). Throws InvalidDigestError on a bad digest. */
  pathOf(digest: string): string {
    assertDigest(digest);
    const path = join(this.root, 'sha256', digest.slice(0, 2), digest);
    // Defence in depth: the digest check already makes this impossible.
    const rel = relative(this.root, path);
    if (rel.startsWith('..') || isAbsolute(rel)) throw new InvalidDigestError(digest);
    return path;
  }

  /** Stores `bytes` and returns their digest; a blob already present and intact is not rewritten. */
  async put(bytes: Uint8Array): Promise<string> {
    const digest = createHash('sha256').update(bytes).digest('hex');
    const path = this.pathOf(digest);
    // A cheap look first: only an object that is there is re-hashed to decide whether to keep it.
    const present = await lstat(path).then(
      (st) => st.isFile(),
      () => false,
    );
    if (present && (await this.check(digest, bytes.length)).problem === null) return digest;

    const [folder, tmpDir] = await Promise.all([this.#folder(digest, true), this.#tmp()]);
    const temp = join(tmpDir, `${digest}.${process.pid}.${randomBytes(6).toString('hex')}`);
    const flags = constants.O_WRONLY | constants.O_CREAT | constants.O_EXCL | constants.O_NOFOLLOW;
    let handle: FileHandle | undefined = await open(temp, flags, 0o400).catch(async (err: NodeJS.ErrnoException) => {
      if (err.code !== 'ENOENT') throw err;
      this.#tmpDir = undefined; // the tmp folder was removed under us: make it again, once
      await this.#tmp();
      return open(temp, flags, 0o400);
    });
    try {
      await handle.writeFile(bytes);
      await handle.sync();
      await handle.close();
      handle = undefined;
      // rename() replaces a link at the final name with the file itself; it never writes through it.
      await rename(temp, path);
    } catch (err) {
      await handle?.close().catch(() => {});
      await rm(temp, { force: true });
      throw err;
    }
    const dir = await open(folder, constants.O_RDONLY | constants.O_DIRECTORY);
    try {
      await dir.sync();
    } finally {
      await dir.close();
    }
    return digest;
  }

  /** The bytes stored under `digest`, re-hashed; throws ArtifactIntegrityError when missing, a link, or altered. */
  async get(digest: string): Promise<Uint8Array> {
    const path = this.pathOf(digest);
    const handle = await this.#openRegular(digest, path);
    let bytes: Buffer;
    try {
      bytes = await handle.readFile();
    } finally {
      await handle.close();
    }
    const actual = createHash('sha256').update(bytes).digest('hex');
    if (actual !== digest) throw new ArtifactIntegrityError(digest, path, `content hashes to ${actual}`);
    return new Uint8Array(bytes.buffer, bytes.byteOffset, bytes.byteLength);
  }

  /**
   * Deletes what is stored under `digest`: only for objects nothing records any more (a training run's checkpoints
   * older than the last the line keeps). Absent is fine; idempotent.
   */
  async remove(digest: string): Promise<void> {
    const path = this.pathOf(digest);
    try {
      await this.#folder(digest, false);
    } catch {
      return; // no shard folder: nothing stored under it
    }
    await rm(path, { force: true });
  }

  /** True when a regular file (not a link) is stored under `digest`; does not re-hash. */
  async has(digest: string): Promise<boolean> {
    const path = this.pathOf(digest);
    try {
      await this.#folder(digest, false);
      return (await lstat(path)).isFile();
    } catch {
      return false;
    }
  }

  /** Size in bytes of the stored object; throws ArtifactIntegrityError when it is missing or not a regular file. */
  async size(digest: string): Promise<number> {
    const path = this.pathOf(digest);
    const handle = await this.#openRegular(digest, path);
    try {
      return (await handle.stat()).size;
    } finally {
      await handle.close();
    }
  }

  /**
   * Re-hashes the object stored under `digest` (streaming, so large weights are fine) and reports what is
   * wrong, if anything: an invalid name, a missing file, a link, a size or a content mismatch. Never throws.
   */
  async check(digest: string, expectedSize?: number): Promise<ObjectCheck> {
    if (!isDigest(digest)) return { path: '', problem: `invalid digest ${JSON.stringify(String(digest).slice(0, 80))} (not 64 hex characters)` };
    const path = this.pathOf(digest);
    let handle: FileHandle;
    try {
      handle = await this.#openRegular(digest, path);
    } catch (err) {
      return { path, problem: err instanceof ArtifactIntegrityError ? err.problem : String(err) };
    }
    try {
      const { size } = await handle.stat();
      if (expectedSize !== undefined && size !== expectedSize) return { path, size, problem: `size is ${size} bytes, expected ${expectedSize}` };
      const hash = createHash('sha256');
      for await (const chunk of createReadStream('', { fd: handle, autoClose: false, start: 0 })) hash.update(chunk as Buffer);
      const actual = hash.digest('hex');
      return { path, size, problem: actual === digest ? null : `content hashes to ${actual}` };
    } finally {
      await handle.close();
    }
  }

  async #root(create: boolean): Promise<string> {
    if (create && !this.#private) {
      // Weights, checkpoints and drops are data: the owner's alone, also for a store made before this rule.
      await mkdir(this.root, { recursive: true, mode: 0o700 });
      await chmod(this.root, 0o700);
      this.#private = true;
    }
    // The root itself may be a link an operator made (to another disk); everything below it may not.
    this.#realRoot ??= realpath(this.root).catch((err: unknown) => {
      this.#realRoot = undefined;
      throw err;
    });
    return this.#realRoot;
  }

  /** The folder for temporary files (same file system as the objects, so rename is atomic), made once. */
  #tmp(): Promise<string> {
    this.#tmpDir ??= (async () => {
      const dir = join(await this.#root(true), 'tmp');
      await mkdir(dir, { recursive: true, mode: 0o700 });
      await this.#assertRealDir(dir);
      return dir;
    })().catch((err: unknown) => {
      this.#tmpDir = undefined;
      throw err;
    });
    return this.#tmpDir;
  }

  /** The object's folder, checked on every use to be real folders (not links) all the way from the root. */
  async #folder(digest: string, create: boolean): Promise<string> {
    const root = await this.#root(create);
    const shard = join(root, 'sha256');
    const folder = join(shard, digest.slice(0, 2));
    if (create) await mkdir(folder, { recursive: true, mode: 0o700 });
    await Promise.all([this.#assertRealDir(shard), this.#assertRealDir(folder)]);
    return folder;
  }

  async #assertRealDir(path: string): Promise<void> {
    const st = await lstat(path);
    if (!st.isDirectory()) throw new Error(`${path} in the artifact store is ${st.isSymbolicLink() ? 'a symbolic link' : 'not a folder'}; refusing to use it`);
  }

  async #openRegular(digest: string, path: string): Promise<FileHandle> {
    try {
      await this.#folder(digest, false);
    } catch (err) {
      const code = (err as NodeJS.ErrnoException).code;
      throw new ArtifactIntegrityError(digest, path, code === 'ENOENT' ? 'missing' : (err as Error).message);
    }
    let handle: FileHandle;
    try {
      // O_NOFOLLOW: a link in place of the object fails here instead of being read through.
      handle = await open(path, constants.O_RDONLY | constants.O_NOFOLLOW);
    } catch (err) {
      const code = (err as NodeJS.ErrnoException).code;
      if (code === 'ENOENT') throw new ArtifactIntegrityError(digest, path, 'missing');
      if (code === 'ELOOP') throw new ArtifactIntegrityError(digest, path, 'is a symbolic link (refused)');
      throw new ArtifactIntegrityError(digest, path, `cannot be opened: ${code ?? String(err)}`);
    }
    const st = await handle.stat();
    if (!st.isFile()) {
      await handle.close();
      throw new ArtifactIntegrityError(digest, path, 'is not a regular file');
    }
    return handle;
  }
}
