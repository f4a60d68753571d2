/** freePort (scripts/stack/wait.ts): a port for a server started a moment later, outside the kernel's ephemeral range. */
import { existsSync, readFileSync } from 'node:fs';
import { createServer } from 'node:net';
import { describe, expect, it } from 'vitest';
import { freePort } from '../../scripts/stack/wait.ts';

const RANGE = '/proc/sys/net/ipv4/ip_local_port_range';

describe('freePort', () => {
  it.runIf(existsSync(RANGE))('draws ports below the ephemeral range that outgoing connections take theirs from, and each binds', async () => {
    const low = Number(readFileSync(RANGE, 'utf8').trim().split(/\s+/)[0]);
    for (let i = 0; i < 20; i++) {
      const port = await freePort();
      expect(port).toBeGreaterThanOrEqual(10_000);
      expect(port).toBeLessThan(low);
      await new Promise<void>((ok, fail) => {
        const server = createServer().on('error', fail);
        server.listen(port, '127.0.0.1', () => server.close(() => ok()));
      });
    }
  });
});
