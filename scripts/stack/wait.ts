import type { ChildProcess } from 'node:child_process';
import { createServer } from 'node:net';

/** Polls `probe` until it returns true; `probe` may throw to give up at once (a process died). */
export async function waitFor(what: string, timeoutMs: number, probe: () => Promise<boolean>): Promise<void> {
  const deadline = Date.now() + timeoutMs;
  let delay = 50;
  while (Date.now() < deadline) {
    if (await probe()) return;
    await new Promise((r) => setTimeout(r, delay));
    delay = Math.min(delay * 2, 500);
  }
  throw new Error(`${what} did not answer within ${Math.round(timeoutMs / 1000)} s`);
}

/** A TCP port on 127.0.0.1 that nothing listens on right now. */
export function freePort(): Promise<number> {
  return new Promise((ok, fail) => {
    const server = createServer();
    server.unref();
    server.on('error', fail);
    server.listen(0, '127.0.0.1', () => {
      const address = server.address();
      server.close(() => (typeof address === 'object' && address ? ok(address.port) : fail(new Error('no port'))));
    });
  });
}

/** True when something accepts TCP connections on 127.0.0.1:port. */
export function portAnswers(port: number, host = '127.0.0.1'): Promise<boolean> {
  return import('node:net').then(
    ({ connect }) =>
      new Promise((ok) => {
        const socket = connect({ port, host });
        socket.setTimeout(1000);
        socket.once('connect', () => (socket.destroy(), ok(true)));
        socket.once('error', () => ok(false));
        socket.once('timeout', () => (socket.destroy(), ok(false)));
      }),
  );
}

/**
 * A last line of defence: if this process exits without stopping its children (a crash, process.exit), the
 * children get a signal on the way out instead of running on orphaned.
 */
export function killOnExit(child: ChildProcess, signal: NodeJS.Signals = 'SIGTERM'): void {
  const kill = () => {
    if (child.exitCode === null && child.signalCode === null) child.kill(signal);
  };
  process.on('exit', kill);
  child.once('exit', () => process.off('exit', kill));
}
