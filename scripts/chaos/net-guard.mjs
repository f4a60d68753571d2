/**
 * Preloaded into worker processes by the network tests (NODE_OPTIONS=--import <this file>): records every
 * outbound attempt made through Node's own APIs — TCP and TLS connects (which http, https, fetch and the
 * postgres driver all go through), UDP sends and DNS lookups — as one JSON line each in
 * $PERENNIAL_NET_LOG. It records and lets the call go on; the test decides. Connections made by native code
 * (the Temporal core's gRPC client) do not pass through here; /proc shows those (netwatch.ts).
 */
import dgram from 'node:dgram';
import dns from 'node:dns';
import net from 'node:net';
import { appendFileSync } from 'node:fs';

const file = process.env.PERENNIAL_NET_LOG;

const loopbackHost = (host) =>
  host === undefined ||
  host === null ||
  host === '' ||
  host === 'localhost' ||
  /^127\./.test(host) ||
  host === '::1' ||
  /^::ffff:127\./i.test(host) ||
  /^0+:0+:0+:0+:0+:0+:0+:1$/.test(host);

function record(api, host, port, extra = {}) {
  if (!file) return;
  try {
    appendFileSync(file, JSON.stringify({ pid: process.pid, api, host: host ?? null, port: port ?? null, loopback: loopbackHost(host), ...extra }) + '\n');
  } catch {
    // the log is for the test; never fail the call
  }
}

if (file) {
  const connect = net.Socket.prototype.connect;
  net.Socket.prototype.connect = function (...args) {
    const first = Array.isArray(args[0]) ? args[0][0] : args[0];
    if (first && typeof first === 'object') {
      if (first.path !== undefined) record('unix', null, null, { path: String(first.path) });
      else record('tcp', first.host ?? 'localhost', first.port);
    } else if (typeof first === 'string' && Number.isNaN(Number(first))) record('unix', null, null, { path: first });
    else record('tcp', typeof args[1] === 'string' ? args[1] : 'localhost', first);
    return connect.apply(this, args);
  };

  const send = dgram.Socket.prototype.send;
  dgram.Socket.prototype.send = function (msg, ...rest) {
    // send(msg, [offset, length,] port[, address][, callback])
    const nums = rest.filter((a) => typeof a === 'number');
    const address = rest.find((a) => typeof a === 'string');
    record('udp', address ?? 'localhost', nums.at(-1));
    return send.call(this, msg, ...rest);
  };
  const dconnect = dgram.Socket.prototype.connect;
  dgram.Socket.prototype.connect = function (port, address, ...rest) {
    record('udp-connect', typeof address === 'string' ? address : 'localhost', port);
    return dconnect.call(this, port, address, ...rest);
  };

  for (const target of [dns, dns.promises]) {
    for (const name of ['lookup', 'resolve', 'resolve4', 'resolve6', 'resolveAny', 'lookupService']) {
      const original = target[name];
      if (typeof original !== 'function') continue;
      target[name] = function (hostname, ...rest) {
        record(`dns.${name}`, String(hostname), null);
        return original.call(this, hostname, ...rest);
      };
    }
  }
}
