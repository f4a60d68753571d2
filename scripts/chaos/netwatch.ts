/**
 * Watches the sockets of a set of processes (and their children) through /proc: every few milliseconds it
 * maps each process's socket inodes (/proc/<pid>/fd) to the TCP and UDP tables of its network namespace
 * (/proc/<pid>/net/{tcp,tcp6,udp,udp6}) and records every remote endpoint it sees. This sees native
 * connections too (the Temporal core's gRPC client), which a JavaScript hook cannot; a connection that
 * opens and closes between two samples can slip past it, which is why the tests also preload
 * net-guard.mjs (every attempt through Node's APIs) and, where it is allowed, run a cycle in a network
 * namespace with loopback only (scripts/chaos.ts).
 */
import { existsSync, readFileSync, readdirSync, readlinkSync } from 'node:fs';

export interface Endpoint {
  pid: number;
  proto: 'tcp' | 'tcp6' | 'udp' | 'udp6';
  local: string;
  remote: string;
  state: string;
  loopback: boolean;
}

const TCP_STATES: Record<string, string> = {
  '01': 'ESTABLISHED',
  '02': 'SYN_SENT',
  '03': 'SYN_RECV',
  '04': 'FIN_WAIT1',
  '05': 'FIN_WAIT2',
  '06': 'TIME_WAIT',
  '07': 'CLOSE',
  '08': 'CLOSE_WAIT',
  '09': 'LAST_ACK',
  '0A': 'LISTEN',
  '0B': 'CLOSING',
};

/** True where /proc can show a process's sockets (Linux). */
export const procNetAvailable = () => existsSync(`/proc/${process.pid}/net/tcp`) && existsSync(`/proc/${process.pid}/fd`);

function ipv4(hex: string): string {
  // /proc prints the address as one little-endian 32-bit word.
  const n = parseInt(hex, 16);
  return [n & 255, (n >>> 8) & 255, (n >>> 16) & 255, (n >>> 24) & 255].join('.');
}

function ipv6(hex: string): string {
  const words: string[] = [];
  for (let i = 0; i < 32; i += 8) {
    const w = hex.slice(i, i + 8);
    // each 32-bit word little-endian
    const bytes = [w.slice(6, 8), w.slice(4, 6), w.slice(2, 4), w.slice(0, 2)].join('');
    words.push(bytes.slice(0, 4), bytes.slice(4, 8));
  }
  return words.map((w) => w.replace(/^0+(?=.)/, '').toLowerCase()).join(':');
}

function endpoint(field: string, v6: boolean): { addr: string; port: number } {
  const [a, p] = field.split(':');
  return { addr: v6 ? ipv6(a!) : ipv4(a!), port: parseInt(p!, 16) };
}

/** Loopback or unspecified (a listening or unconnected socket has no remote). */
export function isLoopback(addr: string): boolean {
  return (
    /^127\./.test(addr) ||
    addr === '0.0.0.0' ||
    addr === '0:0:0:0:0:0:0:1' ||
    addr === '0:0:0:0:0:0:0:0' ||
    /^0:0:0:0:0:ffff:7f/.test(addr) || // ::ffff:127.x.x.x
    addr === '0:0:0:0:0:ffff:0:0'
  );
}

function socketInodes(pid: number): Set<string> {
  const out = new Set<string>();
  let fds: string[];
  try {
    fds = readdirSync(`/proc/${pid}/fd`);
  } catch {
    return out;
  }
  for (const fd of fds) {
    try {
      const m = /^socket:\[(\d+)\]$/.exec(readlinkSync(`/proc/${pid}/fd/${fd}`));
      if (m) out.add(m[1]!);
    } catch {
      // closed meanwhile
    }
  }
  return out;
}

/** The pids of `roots` and all their descendants now. */
export function withDescendants(roots: number[]): number[] {
  const children = new Map<number, number[]>();
  for (const name of readdirSync('/proc')) {
    if (!/^\d+$/.test(name)) continue;
    try {
      const stat = readFileSync(`/proc/${name}/stat`, 'utf8');
      const ppid = Number(stat.slice(stat.lastIndexOf(')') + 2).split(' ')[1]);
      const list = children.get(ppid) ?? [];
      list.push(Number(name));
      children.set(ppid, list);
    } catch {
      // exited meanwhile
    }
  }
  const out = new Set<number>();
  const visit = (pid: number) => {
    if (out.has(pid)) return;
    out.add(pid);
    for (const c of children.get(pid) ?? []) visit(c);
  };
  roots.forEach(visit);
  return [...out];
}

/** The remote endpoints of every socket `pid` holds now. */
export function socketsOf(pid: number): Endpoint[] {
  const inodes = socketInodes(pid);
  if (!inodes.size) return [];
  const out: Endpoint[] = [];
  for (const proto of ['tcp', 'tcp6', 'udp', 'udp6'] as const) {
    let table: string;
    try {
      table = readFileSync(`/proc/${pid}/net/${proto}`, 'utf8');
    } catch {
      continue;
    }
    for (const row of table.split('\n').slice(1)) {
      const f = row.trim().split(/\s+/);
      if (f.length < 10 || !inodes.has(f[9]!)) continue;
      const v6 = proto.endsWith('6');
      const local = endpoint(f[1]!, v6);
      const remote = endpoint(f[2]!, v6);
      out.push({
        pid,
        proto,
        local: `${local.addr}:${local.port}`,
        remote: `${remote.addr}:${remote.port}`,
        state: proto.startsWith('tcp') ? (TCP_STATES[f[3]!] ?? f[3]!) : f[3]!,
        loopback: isLoopback(remote.addr),
      });
    }
  }
  return out;
}

/** Samples the sockets of `pids()` (and their children) every `everyMs` until stop(). */
export class SocketWatch {
  readonly seen = new Map<string, Endpoint>();
  samples = 0;
  #timer: NodeJS.Timeout | undefined;
  constructor(
    private readonly pids: () => number[],
    private readonly everyMs = 50,
  ) {}

  start(): this {
    const tick = () => {
      this.sample();
      this.#timer = setTimeout(tick, this.everyMs);
      this.#timer.unref();
    };
    tick();
    return this;
  }

  sample(): void {
    this.samples++;
    for (const pid of withDescendants(this.pids())) {
      for (const e of socketsOf(pid)) this.seen.set(`${e.proto} ${e.local} ${e.remote}`, e);
    }
  }

  stop(): void {
    clearTimeout(this.#timer);
    this.sample();
  }

  /** Sockets with a remote endpoint that is not on this machine's loopback. */
  outbound(): Endpoint[] {
    return [...this.seen.values()].filter((e) => !e.loopback);
  }

  /** Connected sockets (any remote), for the test to show that it saw something. */
  connections(): Endpoint[] {
    return [...this.seen.values()].filter((e) => !e.remote.endsWith(':0'));
  }
}
