#!/usr/bin/env node
// The `perennial` command: runs the TypeScript CLI through tsx (no build step). It calls run() itself
// rather than relying on a main guard, because npm links it under other names and folders
// (`node_modules/.bin/perennial`, a global bin), where argv[1] names the link, not this file.
import { register } from 'tsx/esm/api';

register();
const { run } = await import('../scripts/cli.ts');
await run(process.argv);
