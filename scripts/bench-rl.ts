/**
 * The RL benchmark: `npm run bench:rl -- [--quick] [--json]`. A `small` foundation trained normally, then a
 * feedback drop (answer format + one-digit sums, checked by verifiers) learned by the policy-gradient update
 * with a KL budget, the loss gate on every suite, and the reward-hacking scenario (bench/rl.ts).
 * Prints one JSON object: rewardBefore/After, goldBefore/After, kl, klBudget, guardWorstRegression,
 * hackingCaught and the curves.
 */
import { fileURLToPath } from 'node:url';
import { runRlBench } from '../bench/rl.ts';
import { initBackendInfo } from '../model/backend.ts';
import { scriptArgs } from '../bench/args.ts';

const { values: args } = scriptArgs('bench:rl', { options: { quick: { type: 'boolean' }, json: { type: 'boolean' } } });
const backend = await initBackendInfo();
const corpusFile = fileURLToPath(new URL('../bench/corpus/pride-and-prejudice.txt', import.meta.url));
const out = await runRlBench({ quick: args.quick ?? false, corpusFile });
const result = { backend: backend.label, quick: args.quick ?? false, ...out, hackingCaught: out.hacking.hackingCaught };
if (args.json) {
  console.log(JSON.stringify(result));
} else {
  console.log(`reward ${out.rewardBefore.toFixed(3)} -> ${out.rewardAfter.toFixed(3)}, gold ${out.goldBefore.toFixed(3)} -> ${out.goldAfter.toFixed(3)}`);
  console.log(
    `KL ${out.kl.toFixed(4)} (budget ${out.klBudget}), worst suite regression ${(out.guardWorstRegression * 100).toFixed(2)}%, accepted ${out.accepted}`,
  );
  console.log(`reward hacking: ${out.hacking.hackingCaught ? 'caught' : 'NOT caught'} (stopped by ${out.hacking.stoppedBy}; rejected for: ${out.hacking.reasons.join('; ') || 'nothing'})`);
}
