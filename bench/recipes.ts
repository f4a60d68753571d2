/**
 * The update recipe the learning-quality benchmark recommends for an application line on the `small` model
 * receiving drops of facts (the release loop's demo). Evidence: `npm run bench:stream -- --demo --sweep ...`
 * (table in bench/README.md). Against the demo's earlier application recipe (150 steps at lr 2e-3,
 * replay 0.5) it learns each new drop's probes (exact match >= 0.83 on every drop, 0.96 on average, against
 * 0.25 minimum / 0.66 average) and keeps earlier probe suites within 0.1 exact match. It relies on the
 * balanced replay mix of activities/train.ts (each earlier drop its own equal share of the replay rows).
 */
import { DEFAULT_RECIPE } from '../schemas/defaults.ts';
import type { Recipe } from '../schemas/io.ts';

export const RECOMMENDED_RECIPE: Recipe = {
  ...DEFAULT_RECIPE,
  // 300 steps x 16 rows: a fact drop needs ~100 sightings of each fact at this size; fewer steps leave it half learned.
  steps: 300,
  batchSize: 16,
  // A small model memorises byte-level facts only at a high rate; 2e-3 to 3e-3 plateau at 25-70% exact match.
  learningRate: 1e-2,
  minLearningRate: 1e-3,
  warmupSteps: 20,
  rewarm: true,
  // Half of each batch rehearses earlier drops (split evenly across them): what keeps earlier facts.
  replayRatio: 0.5,
  // Stronger pulls (1e-2) halve what the update learns; this one only damps drift.
  l2Pull: 1e-3,
};
