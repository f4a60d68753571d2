import type { ChildProcess } from 'node:child_process';
import { readFileSync } from 'node:fs';
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

/**
 * A TCP port on 127.0.0.1 that nothing is bound to right now, for a server started a moment later. It is drawn
 * below the kernel's ephemeral range: a port the kernel hands out (port 0) comes from that range, where any
 * outgoing connection may take it as its local port before the server binds it (a PostgreSQL start in CI
 * failed so: "could not bind IPv4 address: Address already in use"). Falls back to the kernel's choice.
 */
export async function freePort(): Promise<number> {
  const low = ephemeralLow();
  for (let i = 0; i < 50 && low > 12_000; i++) {
    const port = 10_000 + Math.floor(Math.random() * (low - 10_000));
    if (await canBind(port)) return port;
  }
  return bindAndRelease(0);
}

/** The first port of the kernel's ephemeral range (Linux), or 0 where it cannot be read. */
function ephemeralLow(): number {
  try {
    return Number(readFileSync('/proc/sys/net/ipv4/ip_local_port_range', 'utf8').trim().split(/\s+/)[0]) || 0;
  } catch {
    return 0;
  }
}

const canBind = (port: number) =>
  bindAndRelease(port).then(
    () => true,
    () => false,
  );

/** Binds 127.0.0.1:port (0: any), releases it, and gives the port. */
function bindAndRelease(port: number): Promise<number> {
  return new Promise((ok, fail) => {
    const server = createServer();
    server.unref();
    server.on('error', fail);
    server.listen(port, '127.0.0.1', () => {
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
