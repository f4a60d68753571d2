/**
 * A batched matmul kernel for the tfjs wasm backend, written as WebAssembly SIMD that this file
 * assembles at start-up. tfjs-wasm sends only plain 2-D matmuls to XNNPACK; batched ones (attention:
 * [batch·heads, time, time] x [batch·heads, time, headDim]) run a scalar loop at about 1 GFLOP/s and
 * took ~85 of the ~230 ms of a `small` training step; this kernel does those shapes at 6-12 GFLOP/s.
 * It runs in place on the tfjs heap (it imports the backend's own memory), keeps a row of C in SIMD
 * registers while it walks K, and is generated per output width N, so its inner loop has no
 * branches. Registered under its own kernel name: tfjs's kernels are untouched. Accumulation order
 * is fixed (k ascending), so results are deterministic.
 */
import * as tf from '@tensorflow/tfjs';

/** The kernel name registered for the wasm backend. */
export const BATCH_MATMUL_KERNEL = 'PerennialBatchMatMul';

// --- a minimal WebAssembly binary writer: just what the kernel needs ---------------------------

function uleb(n: number): number[] {
  const out: number[] = [];
  do {
    let byte = n & 0x7f;
    n >>>= 7;
    if (n !== 0) byte |= 0x80;
    out.push(byte);
  } while (n !== 0);
  return out;
}

function sleb(n: number): number[] {
  const out: number[] = [];
  for (;;) {
    const byte = n & 0x7f;
    n >>= 7;
    if ((n === 0 && (byte & 0x40) === 0) || (n === -1 && (byte & 0x40) !== 0)) {
      out.push(byte);
      return out;
    }
    out.push(byte | 0x80);
  }
}

function str(s: string): number[] {
  const bytes = [...new TextEncoder().encode(s)];
  return [...uleb(bytes.length), ...bytes];
}

function section(id: number, body: number[]): number[] {
  return [id, ...uleb(body.length), ...body];
}

function vec(items: number[][]): number[] {
  return [...uleb(items.length), ...items.flat()];
}

const I32 = 0x7f;
const V128 = 0x7b;

/** Instruction encoders (a tiny subset of the spec; SIMD ops carry the 0xfd prefix). */
const op = {
  block: [0x02, 0x40],
  loop: [0x03, 0x40],
  end: [0x0b],
  brIf: (depth: number) => [0x0d, ...uleb(depth)],
  get: (i: number) => [0x20, ...uleb(i)],
  set: (i: number) => [0x21, ...uleb(i)],
  i32: (v: number) => [0x41, ...sleb(v)],
  add: [0x6a],
  sub: [0x6b],
  mul: [0x6c],
  ltU: [0x49],
  ne: [0x47],
  eqz: [0x45],
  f32Load: (offset: number) => [0x2a, 2, ...uleb(offset)],
  f32Store: (offset: number) => [0x38, 2, ...uleb(offset)],
  f32Zero: [0x43, 0, 0, 0, 0],
  f32Add: [0x92],
  f32Mul: [0x94],
  v128Load: (offset: number) => [0xfd, ...uleb(0x00), 4, ...uleb(offset)],
  v128Store: (offset: number) => [0xfd, ...uleb(0x0b), 4, ...uleb(offset)],
  v128Zero: [0xfd, ...uleb(0x0c), ...new Array<number>(16).fill(0)],
  f32x4Splat: [0xfd, ...uleb(0x13)],
  f32x4Add: [0xfd, ...uleb(0xe4)],
  f32x4Mul: [0xfd, ...uleb(0xe6)],
};

// Parameters of every generated kernel (all i32; pointers and strides in bytes):
// a, b, c, batch, m, k, aBatchStride, aRowStride, aColStride, bBatchStride, bRowStride
const P = { a: 0, b: 1, c: 2, batch: 3, m: 4, k: 5, aBS: 6, aRS: 7, aCS: 8, bBS: 9, bRS: 10 };
const N_PARAMS = 11;
// i32 locals
const L = { bi: 11, i: 12, kk: 13, aBase: 14, bBase: 15, aRow: 16, aP: 17, bP: 18, cP: 19 };
const N_I32_LOCALS = 9;
const AV = N_PARAMS + N_I32_LOCALS; // v128 local: the broadcast A element
const ACC = AV + 1; // v128 locals: the accumulators
const F32 = 0x7d;
/** Vectors of C held in registers per pass over K (16 vectors = 64 floats). */
const MAX_VECTORS = 16;

/**
 * Body of C[b] = A[b] · B[b] for an output width of n floats. A is read element by element with
 * arbitrary strides (so A may be transposed for free); rows of B and C are contiguous. Columns are
 * done 4 at a time in SIMD registers, up to 64 per pass over K; the last n % 4 in scalar registers.
 */
function kernelBody(n: number): number[] {
  const vectors = Math.floor(n / 4);
  const tail = n % 4;
  const accF32 = ACC + Math.min(MAX_VECTORS, vectors); // f32 locals for the tail columns
  const code: number[] = [];
  const emit = (...parts: number[][]) => parts.forEach((p) => code.push(...p));
  // Nothing to do for an empty problem (the loops below are do-while).
  emit(op.block, op.get(P.batch), op.eqz, op.brIf(0), op.get(P.m), op.eqz, op.brIf(0), op.get(P.k), op.eqz, op.brIf(0));
  emit(op.get(P.c), op.set(L.cP), op.i32(0), op.set(L.bi));
  emit(op.loop); // over batch
  emit(op.get(P.a), op.get(L.bi), op.get(P.aBS), op.mul, op.add, op.set(L.aBase));
  emit(op.get(P.b), op.get(L.bi), op.get(P.bBS), op.mul, op.add, op.set(L.bBase));
  emit(op.i32(0), op.set(L.i));
  emit(op.loop); // over rows of C
  emit(op.get(L.aBase), op.get(L.i), op.get(P.aRS), op.mul, op.add, op.set(L.aRow));
  for (let first = 0; first < vectors; first += MAX_VECTORS) {
    const count = Math.min(MAX_VECTORS, vectors - first);
    for (let v = 0; v < count; v++) emit(op.v128Zero, op.set(ACC + v));
    emit(op.get(L.aRow), op.set(L.aP), op.get(L.bBase), op.set(L.bP), op.get(P.k), op.set(L.kk));
    emit(op.loop); // over K
    emit(op.get(L.aP), op.f32Load(0), op.f32x4Splat, op.set(AV));
    for (let v = 0; v < count; v++) {
      emit(op.get(ACC + v), op.get(AV), op.get(L.bP), op.v128Load((first + v) * 16), op.f32x4Mul, op.f32x4Add);
      emit(op.set(ACC + v));
    }
    emit(op.get(L.aP), op.get(P.aCS), op.add, op.set(L.aP));
    emit(op.get(L.bP), op.get(P.bRS), op.add, op.set(L.bP));
    emit(op.get(L.kk), op.i32(1), op.sub, op.set(L.kk), op.get(L.kk), op.brIf(0));
    emit(op.end);
    for (let v = 0; v < count; v++) emit(op.get(L.cP), op.get(ACC + v), op.v128Store((first + v) * 16));
  }
  if (tail > 0) {
    for (let t = 0; t < tail; t++) emit(op.f32Zero, op.set(accF32 + t));
    emit(op.get(L.aRow), op.set(L.aP), op.get(L.bBase), op.set(L.bP), op.get(P.k), op.set(L.kk));
    emit(op.loop);
    for (let t = 0; t < tail; t++) {
      emit(op.get(accF32 + t), op.get(L.aP), op.f32Load(0), op.get(L.bP), op.f32Load((vectors * 4 + t) * 4));
      emit(op.f32Mul, op.f32Add, op.set(accF32 + t));
    }
    emit(op.get(L.aP), op.get(P.aCS), op.add, op.set(L.aP));
    emit(op.get(L.bP), op.get(P.bRS), op.add, op.set(L.bP));
    emit(op.get(L.kk), op.i32(1), op.sub, op.set(L.kk), op.get(L.kk), op.brIf(0));
    emit(op.end);
    for (let t = 0; t < tail; t++) emit(op.get(L.cP), op.get(accF32 + t), op.f32Store((vectors * 4 + t) * 4));
  }
  emit(op.get(L.cP), op.i32(n * 4), op.add, op.set(L.cP));
  emit(op.get(L.i), op.i32(1), op.add, op.set(L.i), op.get(L.i), op.get(P.m), op.ltU, op.brIf(0));
  emit(op.end);
  emit(op.get(L.bi), op.i32(1), op.add, op.set(L.bi), op.get(L.bi), op.get(P.batch), op.ltU, op.brIf(0));
  emit(op.end);
  emit(op.end); // block
  const locals = vec([
    [...uleb(N_I32_LOCALS), I32],
    [...uleb(1 + Math.min(MAX_VECTORS, vectors)), V128],
    [...uleb(tail), F32],
  ]);
  const body = [...locals, ...code, ...op.end];
  return [...uleb(body.length), ...body];
}

/** Assembles a module exporting `gemm` for output width n, importing memory as env.memory. */
function assemble(n: number): Uint8Array {
  const type = section(1, vec([[0x60, ...vec(new Array<number[]>(N_PARAMS).fill([I32])), ...vec([])]]));
  const imports = section(2, vec([[...str('env'), ...str('memory'), 0x02, 0x00, 0x00]]));
  const funcs = section(3, vec([[0]]));
  const exports = section(7, vec([[...str('gemm'), 0x00, 0]]));
  const code = section(10, vec([kernelBody(n)]));
  return new Uint8Array([0x00, 0x61, 0x73, 0x6d, 0x01, 0x00, 0x00, 0x00, ...type, ...imports, ...funcs, ...exports, ...code]);
}

type Gemm = (...args: number[]) => void;

// The project's TypeScript lib has no DOM types, where the WebAssembly API is declared; this is the
// part of it used here.
interface WasmMemory {
  readonly buffer: ArrayBuffer;
}
interface WasmApi {
  Memory: abstract new (...args: never[]) => WasmMemory;
  Module: new (bytes: Uint8Array) => object;
  Instance: new (module: object, imports: object) => { exports: Record<string, unknown> };
  validate(bytes: Uint8Array): boolean;
}
const wasmApi = (globalThis as unknown as { WebAssembly: WasmApi }).WebAssembly;

/** The slice of tfjs-wasm's backend this kernel relies on (stable across 4.x, used by its own kernels). */
interface WasmBackendLike {
  wasm: { asm?: { memory?: WasmMemory }; wasmMemory?: WasmMemory };
  dataIdMap: { get(dataId: object): { memoryOffset: number } | undefined };
  makeOutput(shape: number[], dtype: 'float32'): tf.TensorInfo;
}

const kernels = new Map<number, Gemm>();
let memory: WasmMemory | undefined;

function gemmFor(n: number): Gemm {
  let k = kernels.get(n);
  if (!k) {
    const module = new wasmApi.Module(assemble(n));
    const instance = new wasmApi.Instance(module, { env: { memory: memory! } });
    k = instance.exports.gemm as Gemm;
    kernels.set(n, k);
  }
  return k;
}

/**
 * Computes out[b] = op(a[b]) · b[b] with op = transpose when `transposeA`; a is [batch, m, k]
 * (or [batch, k, m] transposed), b is [batch, k, n].
 */
function batchMatMulKernel(args: { inputs: tf.NamedTensorInfoMap; backend: unknown; attrs?: tf.NamedAttrMap }): tf.TensorInfo {
  const backend = args.backend as WasmBackendLike;
  const a = args.inputs.a!;
  const b = args.inputs.b!;
  const transposeA = Boolean(args.attrs?.transposeA);
  const [batch, ar, ac] = a.shape as [number, number, number];
  const [, k, n] = b.shape as [number, number, number];
  const m = transposeA ? ac : ar;
  const out = backend.makeOutput([batch, m, n], 'float32');
  const offset = (t: tf.TensorInfo) => backend.dataIdMap.get(t.dataId)!.memoryOffset;
  // Strides in bytes: A element (i, kk) sits at i·rowStride + kk·colStride within its batch.
  const [aRS, aCS] = transposeA ? [4, ac * 4] : [ac * 4, 4];
  gemmFor(n)(offset(a), offset(b), offset(out), batch, m, k, ar * ac * 4, aRS, aCS, k * n * 4, n * 4);
  return out;
}

let registered: boolean | undefined;

/**
 * Registers the kernel with the wasm backend (once); returns false, leaving tfjs as it is, if this
 * runtime lacks wasm SIMD, or the backend does not expose its memory the way 4.x does, or the memory
 * is shared (the threaded build); callers then use tf.matMul.
 */
export function registerWasmBatchMatMul(): boolean {
  if (registered !== undefined) return registered;
  registered = false;
  try {
    const backend = tf.findBackend('wasm') as unknown as WasmBackendLike | null;
    memory = backend?.wasm.asm?.memory ?? backend?.wasm.wasmMemory;
    if (!(memory instanceof wasmApi.Memory) || !wasmApi.validate(assemble(16))) return false;
    // Instantiate once now: a memory this module cannot import (a shared, threaded build) fails here.
    gemmFor(16);
    tf.registerKernel({ kernelName: BATCH_MATMUL_KERNEL, backendName: 'wasm', kernelFunc: batchMatMulKernel as tf.KernelFunc });
    registered = true;
  } catch {
    registered = false;
  }
  return registered;
}

/** Whether the SIMD kernel serves the current backend. */
export function wasmBatchMatMulAvailable(): boolean {
  return tf.getBackend() === 'wasm' && registerWasmBatchMatMul();
}

/** out[b] = op(a[b]) · b[b] through the SIMD kernel; call only when wasmBatchMatMulAvailable. */
export function wasmBatchMatMul(a: tf.Tensor3D, b: tf.Tensor3D, transposeA: boolean): tf.Tensor3D {
  return tf.engine().runKernel(BATCH_MATMUL_KERNEL, { a, b }, { transposeA }) as tf.Tensor3D;
}
