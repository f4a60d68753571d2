/**
 * The learning-quality benchmark: `npm run bench:stream [-- --quick] [--drops DIR] [--json] [--html FILE]`.
 * Trains a starting model through a stream of drops with each strategy (naive fine-tuning, replay, the
 * product's default recipe, retraining from scratch), prints the strategy table (final quality, backward
 * transfer, forgetting, new-drop gain, compute against retraining), the matrix R[i][j] per strategy and the
 * plasticity series, and runs a long stream (20 drops) for plasticity erosion. See bench/README.md.
 */
import { fork } from 'node:child_process';
import { createHash } from 'node:crypto';
import { existsSync, mkdirSync, mkdtempSync, readFileSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { initBackendInfo } from '../model/backend.ts';
import { type ModelConfig, PRESETS, type PresetName, parameterCount, preset } from '../model/config.ts';
import {
  type BenchmarkResult,
  type FairBaselines,
  type RetrainSearch,
  type PlasticityOptions,
  type RecipeKnobs,
  type Strategy,
  type StreamDrop,
  type StreamModel,
  type StreamResult,
  type UpdateRecipe,
  STRATEGY_NAMES,
  assemble,
  columns,
  fairBaselines,
  searchRetrainRecipe,
  dropFromBytes,
  flops,
  fromProductRecipe,
  htmlReport,
  matrixTable,
  plasticityTable,
  readDropFile,
  readDropFolder,
  runStream,
  standardStrategies,
  streamCache,
  recipeTable,
  summaryTable,
  truncateResult,
} from '../bench/index.ts';
import { RECOMMENDED_RECIPE } from '../bench/recipes.ts';
import { deriveSeed } from '../model/random.ts';
import { trainModel } from '../model/train.ts';
import { initWeights } from '../model/transformer.ts';
import { type Weights, loadModel, saveModel } from '../model/weights.ts';
import { DEFAULT_RECIPE } from '../schemas/defaults.ts';
import { streamScenario, writeScenario } from '../bench/scenario.ts';
import { scriptArgs } from '../bench/args.ts';

/** Everything one run of the benchmark needs, resolved from the preset and the command line. */
interface Plan {
  name: string;
  config: ModelConfig;
  /** Recipe of the starting model's training on the base (also retraining's recipe). */
  baseTraining?: UpdateRecipe;
  recipe: UpdateRecipe;
  knobs: RecipeKnobs;
  recipeSource: string;
  plasticity?: PlasticityOptions;
  seeds: number[];
  /** Main stream: drops per stream for the generator. */
  streamDrops: number;
  productsPerDrop: number;
  paragraphs: number;
  /** Fixed positions of the regulation change and the FAQ drop, so a longer stream extends a shorter one. */
  regulationAt: number;
  faqAt: number;
  /** The long plasticity stream (0: none) and its strategies. */
  plasticityDrops: number;
  plasticityStrategies: string[];
  strategies: string[];
  initSeed: number;
}

const PRESETS_ = {
  /** Tiny model, short stream: finishes within 3 minutes on a 2-core machine. */
  quick: (): Plan => ({
    name: 'quick',
    config: preset('tiny', { context: 64 }),
    baseTraining: { steps: 150, batchSize: 16, learningRate: 1e-2, minLearningRate: 1e-3, warmupSteps: 15, weightDecay: 0.01, gradClip: 1 },
    recipe: { steps: 120, batchSize: 16, learningRate: 2e-2, minLearningRate: 2e-3, warmupSteps: 10, weightDecay: 0.01, gradClip: 1 },
    knobs: { replayRatio: 0.5, replayBudget: 5000, l2Pull: 1e-3, replayMix: 'balanced' },
    recipeSource: 'quick preset (tiny model, the recommended recipe scaled down)',
    plasticity: { facts: 8, steps: 80, batchSize: 8, learningRate: 2e-2, warmupSteps: 5, seed: 101 },
    seeds: [1],
    streamDrops: 3,
    productsPerDrop: 3,
    paragraphs: 40,
    regulationAt: 2,
    faqAt: 0,
    plasticityDrops: 0,
    plasticityStrategies: [],
    strategies: [...STRATEGY_NAMES],
    initSeed: 1,
  }),
  /** The release loop's demo model (small: d64, 2 layers, ctx 64, batch 16) on a 10-drop stream, plus a 20-drop plasticity run. */
  full: (): Plan => ({
    name: 'full',
    config: preset('small'),
    // The demo's foundation: 300 steps on generated general text.
    baseTraining: { steps: 300, batchSize: 16, learningRate: 4e-3, minLearningRate: 3e-4, warmupSteps: 30, weightDecay: 0.01, gradClip: 1 },
    ...fromRecommended(),
    // 16 facts in 100 steps: a fresh small model reaches 0.7-0.9 exact match, so erosion shows and 1.0 is not a ceiling.
    plasticity: { facts: 16, steps: 100, batchSize: 16, learningRate: 1e-2, warmupSteps: 5, seed: 101 },
    seeds: [1],
    streamDrops: 10,
    productsPerDrop: 8,
    paragraphs: 240,
    regulationAt: 7,
    faqAt: 5,
    plasticityDrops: 20,
    plasticityStrategies: ['naive', 'default'],
    strategies: [...STRATEGY_NAMES],
    initSeed: 1,
  }),
};

function fromRecommended(): Pick<Plan, 'recipe' | 'knobs' | 'recipeSource'> {
  const { recipe, knobs } = fromProductRecipe(RECOMMENDED_RECIPE);
  return { recipe, knobs, recipeSource: 'RECOMMENDED_RECIPE (bench/recipes.ts)' };
}

const { values: args } = scriptArgs('bench:stream', {
  options: {
    quick: { type: 'boolean', default: false },
    model: { type: 'string' },
    drops: { type: 'string' },
    demo: { type: 'boolean', default: false },
    sweep: { type: 'string' },
    base: { type: 'string' },
    start: { type: 'string' },
    'skip-invalid': { type: 'boolean', default: false },
    k: { type: 'string' },
    strategies: { type: 'string' },
    seeds: { type: 'string' },
    recipe: { type: 'string' },
    steps: { type: 'string' },
    lr: { type: 'string' },
    batch: { type: 'string' },
    warmup: { type: 'string' },
    'replay-ratio': { type: 'string' },
    l2: { type: 'string' },
    'replay-mix': { type: 'string' },
    'plasticity-drops': { type: 'string' },
    'no-plasticity': { type: 'boolean', default: false },
    supersede: { type: 'string', default: 'new-drop' },
    jobs: { type: 'string', default: '1' },
    json: { type: 'boolean', default: false },
    'json-out': { type: 'string' },
    html: { type: 'string' },
    'no-cache': { type: 'boolean', default: false },
    'no-retrain-search': { type: 'boolean', default: false },
    worker: { type: 'string' },
    help: { type: 'boolean', short: 'h', default: false },
  },
});

const HELP = `npm run bench:stream -- [options]
  --quick                 tiny model, 4 drops, all strategies (< 3 min); default: the full preset (small model, 10 drops + 20-drop plasticity run)
  --model tiny|small|base the model preset instead of the plan's (base: d256, 4 layers, ctx 256; worth it on native TensorFlow)
  --drops DIR             measure your own drop files (name order; each split with parseDrop) instead of the generator
  --demo                  the release loop demo's stream: its foundation text as the base, then catalogue A, catalogue B,
                          FAQ and the load-rule change (the malformed and poisoned drops are left out: the loop rejects them)
  --sweep "a:steps=150,lr=2e-3;b:..."   compare update recipes (default strategy with each; keys steps lr min batch
                          warmup replay l2 mix budget rewarm) in one table against the targets (new-drop EM >= 0.8,
                          update regressions <= 0.1 EM / 10% loss)
  --base FILE             the starting model's own data (a drop file): trained on first unless --start, replayed, retrained on, suite 0
  --start MODEL           starting model file (perennial-model/1 safetensors) instead of training one
  --skip-invalid          leave out drop files that fail validation (reported), instead of stopping
  --k N                   number of generated drops (main stream)
  --strategies a,b        subset of ${STRATEGY_NAMES.join(',')}
  --seeds 1,2             one run per seed, metrics averaged
  --recipe product|recommended   take the per-drop budget and replay/L2 knobs from DEFAULT_RECIPE or RECOMMENDED_RECIPE
  --steps --lr --batch --warmup --replay-ratio --l2   override the per-drop recipe
  --replay-mix balanced|pooled   replay share split evenly over earlier drops (the release loop's) or one pooled source
  --plasticity-drops N    length of the long plasticity stream (0: none)
  --no-plasticity         skip the plasticity probe
  --supersede new-drop|all   replay filter: the release loop's (new drop's probes) or every later drop's
  --jobs N                run strategies in N processes (each uses one core)
  --json                  print the full result as JSON on stdout (tables go nowhere)
  --json-out FILE         also write the full result as JSON to FILE
  --html FILE             write the HTML report (heatmap of R per strategy)
  --no-cache              retrain the starting model even if a cached copy exists
  --no-retrain-search     retrain with the base training's recipe instead of searching its learning rate first
                          (the search, bench/fair.ts, also gives the retrain-once row; its FLOPs are charged to retraining)`;

// ---------------------------------------------------------------------------------------------------------
// JSON with NaN and Infinity preserved (metrics of an empty column are NaN).
// The marker starts with NUL, which no drop text can contain (parseDrop refuses it).
const MARK = '\u0000';
const toJson = (x: unknown) => JSON.stringify(x, (_k, v: unknown) => (typeof v === 'number' && !Number.isFinite(v) ? `${MARK}${v}` : v));
const fromJson = <T>(s: string): T => JSON.parse(s, (_k, v: unknown) => (typeof v === 'string' && v.startsWith(MARK) ? Number(v.slice(1)) : v)) as T;

/** What a worker process needs to run one strategy. */
interface Job {
  label: string;
  drops: StreamDrop[];
  base?: StreamDrop;
  config: ModelConfig;
  startPath: string;
  initSeed: number;
  baseTraining?: UpdateRecipe;
  recipe: UpdateRecipe;
  strategy: Strategy;
  seeds: number[];
  plasticity?: PlasticityOptions;
  supersede: 'new-drop' | 'all';
}

const log = (line: string) => process.stderr.write(`${line}\n`);

async function runJob(job: Job, cache = streamCache()): Promise<StreamResult> {
  const start = loadModel(readFileSync(job.startPath)).weights;
  return runStream({
    drops: job.drops,
    base: job.base,
    model: { config: job.config, start, initSeed: job.initSeed, baseTraining: job.baseTraining },
    strategy: job.strategy,
    recipe: job.recipe,
    seeds: job.seeds,
    plasticity: job.plasticity,
    supersede: job.supersede,
    cache,
    onEvent: (e) => log(`[${job.label} ${e.strategy} seed ${e.seed}] ${e.drop}/${e.drops} ${e.message}`),
  });
}

/** Runs jobs in up to `jobs` child processes (or in this one), preserving order. */
async function runJobs(list: Job[], jobs: number, dir: string): Promise<StreamResult[]> {
  if (jobs <= 1) {
    const caches = new Map<string, ReturnType<typeof streamCache>>();
    const out: StreamResult[] = [];
    for (const job of list) {
      const cache = caches.get(job.label) ?? streamCache();
      caches.set(job.label, cache);
      out.push(await runJob(job, cache));
    }
    return out;
  }
  const results: StreamResult[] = new Array(list.length);
  // Longest first (retraining dominates), so the processes finish at about the same time.
  const order = list.map((_, i) => i).sort((a, b) => cost(list[b]!) - cost(list[a]!));
  let next = 0;
  const worker = async () => {
    while (next < order.length) {
      const i = order[next++]!;
      const spec = join(dir, `job-${i}.json`);
      const out = join(dir, `result-${i}.json`);
      writeFileSync(spec, toJson(list[i]));
      await new Promise<void>((resolve, reject) => {
        const child = fork(process.argv[1]!, ['--worker', `${spec}:${out}`], { execArgv: process.execArgv, stdio: ['ignore', 'inherit', 'inherit', 'ipc'] });
        child.on('exit', (code) => (code === 0 ? resolve() : reject(new Error(`worker for ${list[i]!.label}/${list[i]!.strategy.name} exited with ${code}`))));
      });
      results[i] = fromJson<StreamResult>(readFileSync(out, 'utf8'));
    }
  };
  await Promise.all(Array.from({ length: Math.min(jobs, list.length) }, worker));
  return results;
}

function cost(job: Job): number {
  const k = job.drops.length;
  const steps = job.strategy.kind === 'retrain' ? k * (job.baseTraining?.steps ?? 0) + ((k * (k + 1)) / 2) * job.recipe.steps : k * job.recipe.steps;
  return steps * (job.strategy.kind === 'retrain' ? (job.baseTraining?.batchSize ?? job.recipe.batchSize) : job.recipe.batchSize);
}

/** The starting model: from --start, from the cache, or trained on the base now. */
async function startingModel(
  plan: Plan,
  base: StreamDrop | undefined,
  dir: string,
): Promise<{ path: string; weights: Weights; config: ModelConfig; trainedNow: boolean; wallMs: number }> {
  if (args.start) {
    const { config, weights } = loadModel(readFileSync(args.start));
    return { path: args.start, weights, config, trainedNow: false, wallMs: 0 };
  }
  const config = plan.config;
  if (!base || !plan.baseTraining) {
    const weights = initWeights(config, plan.initSeed);
    const path = join(dir, 'start.safetensors');
    writeFileSync(path, saveModel(config, weights));
    return { path, weights, config, trainedNow: false, wallMs: 0 };
  }
  const key = createHash('sha256')
    .update(toJson({ config, recipe: plan.baseTraining, seed: plan.initSeed, docs: base.train }))
    .digest('hex')
    .slice(0, 16);
  const cacheDir = join(tmpdir(), 'perennial-bench-stream');
  const path = join(cacheDir, `start-${key}.safetensors`);
  if (!args['no-cache'] && existsSync(path)) return { path, weights: loadModel(readFileSync(path)).weights, config, trainedNow: false, wallMs: 0 };
  log(`training the starting model on ${base.name}: ${plan.baseTraining.steps} steps`);
  const r = await trainModel({
    config,
    init: initWeights(config, plan.initSeed),
    sources: [{ name: 'drop', weight: 1, docs: base.train }],
    recipe: { ...plan.baseTraining, l2Pull: 0, seed: plan.initSeed },
  });
  mkdirSync(cacheDir, { recursive: true });
  writeFileSync(path, saveModel(config, r.weights, { purpose: 'bench-stream starting model' }));
  return { path, weights: r.weights, config, trainedNow: true, wallMs: r.wallMs };
}

function generated(seed: number, k: number, plan: Plan): { base: StreamDrop; drops: StreamDrop[] } {
  const s = streamScenario(seed, {
    drops: k,
    productsPerDrop: plan.productsPerDrop,
    paragraphs: plan.paragraphs,
    regulationAt: plan.regulationAt <= k ? plan.regulationAt : 0,
    faqAt: plan.faqAt <= k ? plan.faqAt : 0,
  });
  const read = (d: { name: string; content: string }) => dropFromBytes(new TextEncoder().encode(d.content), d.name);
  return { base: read(s.base), drops: s.drops.map(read) };
}

/** Recipe variants of --sweep: "name:key=value,...;name:..." on top of the plan's recipe and knobs. */
function parseSweep(spec: string, plan: Plan): Strategy[] {
  return spec
    .split(';')
    .map((v) => v.trim())
    .filter(Boolean)
    .map((variant, n) => {
      const [name, body] = variant.includes(':') ? (variant.split(':', 2) as [string, string]) : [`recipe-${n + 1}`, variant];
      const recipe: Partial<UpdateRecipe> = {};
      const strategy: Strategy = { ...standardStrategies(plan.knobs).default, name: name.trim(), recipe };
      for (const kv of body.split(',').filter((x) => x.trim())) {
        const [key, raw] = kv.split('=').map((x) => x.trim()) as [string, string];
        const value = Number(raw);
        const numeric = () => {
          if (!Number.isFinite(value)) throw new Error(`--sweep ${name}: ${key}=${raw} is not a number`);
          return value;
        };
        if (key === 'steps') recipe.steps = numeric();
        else if (key === 'lr') recipe.learningRate = numeric();
        else if (key === 'min') recipe.minLearningRate = numeric();
        else if (key === 'batch') recipe.batchSize = numeric();
        else if (key === 'warmup') recipe.warmupSteps = numeric();
        else if (key === 'replay') strategy.replayRatio = numeric();
        else if (key === 'l2') strategy.l2Pull = numeric();
        else if (key === 'budget') strategy.replayBudget = numeric();
        else if (key === 'rewarm') strategy.rewarm = raw === 'true' || raw === '1';
        else if (key === 'mix' && (raw === 'pooled' || raw === 'balanced')) strategy.replayMix = raw;
        else throw new Error(`--sweep ${name}: unknown setting ${kv}`);
      }
      // A learning rate without its own floor keeps the plan's floor ratio (the product's is lr / 10).
      if (recipe.learningRate !== undefined && recipe.minLearningRate === undefined) recipe.minLearningRate = recipe.learningRate / 10;
      return strategy;
    });
}

function resolvePlan(): Plan {
  const plan = args.quick ? PRESETS_.quick() : PRESETS_.full();
  if (args.model !== undefined) {
    if (!(args.model in PRESETS)) throw new Error(`--model must be one of ${Object.keys(PRESETS).join(', ')}, got ${args.model}`);
    plan.config = preset(args.model as PresetName);
  }
  if (args.recipe === 'product') Object.assign(plan, { ...fromProductRecipe(DEFAULT_RECIPE), recipeSource: 'DEFAULT_RECIPE (schemas/defaults.ts)' });
  else if (args.recipe === 'recommended') Object.assign(plan, fromRecommended());
  else if (args.recipe) throw new Error(`--recipe must be product or recommended, got ${args.recipe}`);
  const n = (k: keyof typeof args) => (args[k] === undefined ? undefined : Number(args[k]));
  plan.recipe = {
    ...plan.recipe,
    ...(n('steps') !== undefined && { steps: n('steps')! }),
    ...(n('lr') !== undefined && { learningRate: n('lr')!, minLearningRate: n('lr')! / 10 }),
    ...(n('batch') !== undefined && { batchSize: n('batch')! }),
    ...(n('warmup') !== undefined && { warmupSteps: n('warmup')! }),
  };
  if (n('replay-ratio') !== undefined) plan.knobs.replayRatio = n('replay-ratio')!;
  if (n('l2') !== undefined) plan.knobs.l2Pull = n('l2')!;
  if (args['replay-mix'] === 'pooled' || args['replay-mix'] === 'balanced') plan.knobs.replayMix = args['replay-mix'];
  else if (args['replay-mix']) throw new Error(`--replay-mix must be balanced or pooled, got ${args['replay-mix']}`);
  if (n('k') !== undefined) plan.streamDrops = n('k')!;
  if (n('plasticity-drops') !== undefined) plan.plasticityDrops = n('plasticity-drops')!;
  if (args['no-plasticity']) {
    plan.plasticity = undefined;
    plan.plasticityDrops = 0;
  }
  if (args.seeds) plan.seeds = args.seeds.split(',').map(Number);
  if (args.strategies) {
    plan.strategies = args.strategies.split(',');
    for (const s of plan.strategies)
      if (!(STRATEGY_NAMES as readonly string[]).includes(s)) throw new Error(`unknown strategy ${s}: one of ${STRATEGY_NAMES.join(', ')}`);
  }
  if (args.supersede !== 'new-drop' && args.supersede !== 'all') throw new Error(`--supersede must be new-drop or all`);
  return plan;
}

async function main(): Promise<void> {
  if (args.help) {
    console.log(HELP);
    return;
  }
  if (args.worker) {
    const [spec, out] = args.worker.split(':') as [string, string];
    writeFileSync(out, toJson(await runJob(fromJson<Job>(readFileSync(spec, 'utf8')))));
    return;
  }
  const started = performance.now();
  const backend = await initBackendInfo();
  const plan = resolvePlan();
  const dir = mkdtempSync(join(tmpdir(), 'bench-stream-'));
  try {
    // --- the stream -----------------------------------------------------------------------------------
    let base: StreamDrop | undefined;
    let drops: StreamDrop[];
    let source: string;
    if (args.demo) {
      const files = writeScenario(join(dir, 'demo-drops'));
      base = readDropFile(files.foundation);
      drops = [files.catalogueA, files.catalogueB, files.faq, files.regulation].map((f) => readDropFile(f));
      source = `release-loop demo (writeScenario): base ${base.name}, then ${drops.map((d) => d.name).join(', ')}`;
    } else if (args.drops) {
      const folder = readDropFolder(args.drops, { skipInvalid: args['skip-invalid'] });
      for (const s of folder.skipped) log(`skipped ${s.file}: ${s.reason}`);
      drops = folder.drops;
      base = args.base ? readDropFile(args.base) : undefined;
      source = `folder ${args.drops} (${drops.length} drops${base ? `, base ${base.name}` : ''})`;
      if (!base && !args.start) plan.baseTraining = undefined;
    } else {
      ({ base, drops } = generated(7, plan.streamDrops, plan));
      source = `generator seed 7: ${drops.map((d) => d.name).join(', ')}`;
    }
    const start = await startingModel(plan, base, dir);
    const config = start.config;
    if (args.start) plan.baseTraining = undefined;
    const all = standardStrategies(plan.knobs);
    const strategies = args.sweep ? parseSweep(args.sweep, plan) : plan.strategies.map((s) => all[s as keyof typeof all]);
    // Retraining's own recipe: a successive-halving search over its learning rate on the whole stream, judged on
    // final quality; its winning full run is the retrain-once baseline, and the retrain strategy uses its recipe.
    let search: RetrainSearch | undefined;
    const retrain = strategies.find((s) => s.kind === 'retrain');
    if (retrain && !args['no-retrain-search']) {
      const retrainRecipe = plan.baseTraining ?? plan.recipe;
      search = await searchRetrainRecipe({
        config,
        drops,
        base,
        initSeed: plan.initSeed,
        recipe: retrainRecipe,
        baseSteps: plan.baseTraining?.steps ?? 0,
        dropSteps: Math.round((plan.recipe.steps * plan.recipe.batchSize) / retrainRecipe.batchSize),
        // The same seed as retrain-every's last run, so with the chosen recipe the two final models coincide.
        seed: deriveSeed(plan.seeds[0] ?? 1, drops.length),
        log,
      });
      retrain.recipe = { ...retrain.recipe, ...search.recipe };
      retrain.retrainStepScale = search.stepScale;
      log(`retraining recipe: lr ${search.recipe.learningRate} (floor ${search.recipe.minLearningRate}), ${search.stepScale} of the horizon, ${search.trials.length} trials, ${flops(search.flops)}`);
    }
    const job = (label: string, d: StreamDrop[], strategy: Strategy): Job => ({
      label,
      drops: d,
      base,
      config,
      startPath: start.path,
      initSeed: plan.initSeed,
      baseTraining: plan.baseTraining,
      recipe: plan.recipe,
      strategy,
      seeds: plan.seeds,
      plasticity: plan.plasticity,
      supersede: args.supersede as 'new-drop' | 'all',
    });
    let longDrops: StreamDrop[] = [];
    if (plan.plasticityDrops > 0 && plan.plasticity && !args.drops && !args.demo && !args.sweep) {
      const long = generated(7, plan.plasticityDrops, plan);
      if (long.base.train.join('\n') !== base?.train.join('\n')) throw new Error('the long stream must share the starting model');
      longDrops = long.drops;
    }
    // The long stream starts with the main stream's drops, so a strategy run on it also gives its main-stream
    // result (the first K rows and the suites of drops 1..K): no need to run it twice.
    const extends_ = longDrops.length > drops.length && toJson(longDrops.slice(0, drops.length)) === toJson(drops);
    const longStrategies = longDrops.length ? plan.plasticityStrategies.map((s) => all[s as keyof typeof all]) : [];
    const fromLong = (s: Strategy) => extends_ && longStrategies.some((l) => l.name === s.name);
    const mainJobs = strategies.filter((s) => !fromLong(s)).map((s) => job('main', drops, s));
    const longJobs = longStrategies.map((s) => job('plasticity', longDrops, s));
    log(
      `backend ${backend.label}; model d${config.dModel} ${config.nLayers} layers ctx ${config.context} (${parameterCount(config).toLocaleString('en-US')} parameters); ` +
        `per drop ${plan.recipe.steps} steps x batch ${plan.recipe.batchSize}, lr ${plan.recipe.learningRate}; replay ${plan.knobs.replayRatio} (${plan.knobs.replayMix ?? 'balanced'}), l2Pull ${plan.knobs.l2Pull}`,
    );
    const results = await runJobs([...mainJobs, ...longJobs], Math.max(1, Number(args.jobs)), dir);
    const direct = results.slice(0, mainJobs.length);
    const longResults = results.slice(mainJobs.length);
    const mainResults = strategies.map((s) =>
      fromLong(s)
        ? truncateResult(
            longResults.find((r) => r.strategy.name === s.name)!,
            drops.length,
            longDrops,
            base,
          )
        : direct.find((r) => r.strategy.name === s.name)!,
    );
    const bench: BenchmarkResult = assemble(mainResults, {
      model: { config, start: start.weights, initSeed: plan.initSeed, baseTraining: plan.baseTraining } satisfies StreamModel,
      recipe: plan.recipe,
      drops,
    });
    const productRow = bench.summary.find((s) => s.strategy === 'default');
    const everyRow = bench.summary.find((s) => s.strategy === 'retrain');
    const fair: FairBaselines | undefined =
      search && productRow && everyRow
        ? fairBaselines({ strategy: productRow.strategy, flops: productRow.flops, finalExactMatch: productRow.finalExactMatch, finalLoss: productRow.finalLoss }, everyRow, search)
        : undefined;
    const elapsedMs = performance.now() - started;
    const meta = {
      preset: plan.name,
      backend: backend.label,
      source,
      config,
      baseTraining: plan.baseTraining,
      recipe: plan.recipe,
      knobs: plan.knobs,
      recipeSource: plan.recipeSource,
      plasticity: plan.plasticity,
      seeds: plan.seeds,
      jobs: Number(args.jobs),
      startingModelTrainedNow: start.trainedNow,
      elapsedMs,
    };

    // NaN (a metric with nothing to measure) is written as null.
    const json = () => JSON.stringify({ meta, ...bench, fairBaselines: fair, plasticityRun: longResults });
    if (args['json-out']) writeFileSync(args['json-out'], json() + '\n');
    if (args.json) {
      process.stdout.write(json() + '\n');
    } else {
      const out: string[] = [];
      out.push(`stream: ${source}`);
      out.push(
        `recipe: ${plan.recipeSource}: ${plan.recipe.steps} steps x batch ${plan.recipe.batchSize}, lr ${plan.recipe.learningRate}, warmup ${plan.recipe.warmupSteps}; replay ratio ${plan.knobs.replayRatio}, l2Pull ${plan.knobs.l2Pull}`,
      );
      out.push('');
      if (args.sweep) out.push(recipeTable(mainResults), '');
      out.push(summaryTable(bench.summary));
      out.push('');
      if (bench.cost) out.push(bench.cost.sentence);
      if (fair) {
        out.push(
          '',
          `retraining's own recipe: lr ${fair.recipe.learningRate} (floor ${fair.recipe.minLearningRate}, warmup ${fair.recipe.warmupSteps}), ${fair.stepScale} of the default horizon, by ${fair.method}; search ${flops(fair.searchFlops)}, charged to retraining`,
          columns(
            ['baseline', 'final EM', 'final loss', 'compute', '+ search', `${fair.product} vs it`, 'with search', `${fair.product} within tolerance`],
            [fair.retrainEvery, fair.retrainOnce].map((b) => [
              b.baseline,
              b.quality.finalExactMatch.toFixed(3),
              b.quality.finalLoss.toFixed(3),
              flops(b.flops),
              flops(b.chargedFlops),
              `${(100 * b.relativeCompute).toFixed(1)}%`,
              `${(100 * b.relativeComputeCharged).toFixed(1)}%`,
              b.productWithinTolerance ? 'yes' : 'no',
            ]),
          ),
          fair.retrainEvery.sentence,
          fair.retrainOnce.sentence,
        );
      }
      for (const r of mainResults) {
        out.push('', `R[i][j] for ${r.strategy.name} (loss: lower is better; EM: higher is better)`, matrixTable(r));
        if (r.oldAnswers.length) {
          out.push(
            `old answers still given: ${r.oldAnswers.map((o) => `drop ${o.drop} (${o.prompts} prompts): ${o.afterUpdate.toFixed(2)} right after, ${o.final.toFixed(2)} at the end`).join('; ')}`,
          );
        }
      }
      const withProbe = [
        ...mainResults.filter((r) => r.plasticity.length && r.strategy.kind !== 'retrain').map((r) => ({ title: `${r.strategy.name}, main stream`, r })),
        ...longResults.map((r) => ({ title: `${r.strategy.name}, ${r.dropNames.length}-drop plasticity stream`, r })),
      ];
      if (withProbe.length) {
        const ref = withProbe[0]!.r.plasticityReference;
        out.push(
          '',
          `plasticity probe: ${plan.plasticity?.facts} new facts, ${plan.plasticity?.steps} steps; a fresh model reaches EM ${ref?.exactMatch.toFixed(2)} (ratio = probe EM / that)`,
        );
        for (const { title, r } of withProbe) out.push('', title, plasticityTable(r));
      }
      out.push(
        '',
        `total ${(elapsedMs / 60_000).toFixed(1)} min (${plan.name} preset, ${backend.label}, ${Number(args.jobs)} process(es)); compute per strategy in FLOPs estimated as tokens x flopsPerToken; retraining after every drop: ${flops(bench.retrainFlops)}`,
      );
      console.log(out.join('\n'));
    }
    if (args.html) {
      writeFileSync(
        args.html,
        htmlReport(bench, {
          title: `perennial learning-quality benchmark (${plan.name})`,
          notes: [`stream: ${source}`, `recipe: ${plan.recipeSource}`, `elapsed ${(elapsedMs / 60_000).toFixed(1)} min on ${backend.label}`],
          extra: longResults.map((r) => ({ title: `${r.strategy.name}: ${r.dropNames.length}-drop plasticity stream`, result: r })),
        }),
      );
      log(`wrote ${args.html}`);
    }
  } finally {
    rmSync(dir, { recursive: true, force: true });
  }
}

await main();
