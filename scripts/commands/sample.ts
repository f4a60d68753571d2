/** `perennial sample <line>@<version> "prompt"`: generate text from a version, for inspection. */
import type { Command } from 'commander';
import { initBackend } from '../../model/backend.ts';
import { sample } from '../../model/evaluate.ts';
import { LanguageModel } from '../../model/transformer.ts';
import { loadModel } from '../../model/weights.ts';
import { CliArgs, parseCliArgs } from '../../schemas/io.ts';
import { openRegistry, UserError } from './context.ts';

export function register(program: Command) {
  program
    .command('sample <ref> <prompt>')
    .description('generate a continuation of <prompt> from <line>@<version> (or <line>@<channel>)')
    .option('--temperature <t>', '0 = greedy', '0.8')
    .option('--max-tokens <n>', 'bytes to generate', '80')
    .option('--seed <n>', 'sampling seed', '1')
    .action(async (ref: string, prompt: string, opts) => {
      const o = parseCliArgs(
        CliArgs.sample,
        { ref, prompt, temperature: opts.temperature, maxTokens: opts.maxTokens, seed: opts.seed },
        { ref: '<ref>', prompt: '<prompt>' },
      );
      const target = o.ref;
      const { registry, store, close } = openRegistry();
      try {
        let version = 'version' in target ? target.version : undefined;
        if (version === undefined) {
          const channel = (await registry.getChannels(target.line)).find((c) => c.channel === (target as { channel: string }).channel);
          if (!channel?.version) throw new UserError(`${ref} points at no version`);
          version = channel.version;
        }
        const v = await registry.getVersion(target.line, version);
        const backend = await initBackend();
        const { config, weights } = loadModel(await store.get(v.weightsDigest));
        const model = LanguageModel.create(config, weights);
        try {
          const text = await sample(model, prompt, { temperature: o.temperature, maxTokens: o.maxTokens, seed: o.seed });
          console.log(prompt + text);
          console.error(`(${target.line}@${version}, ${backend}, temperature ${o.temperature})`);
        } finally {
          model.dispose();
        }
      } finally {
        await close();
      }
    });
}
