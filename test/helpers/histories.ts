/**
 * Workflow histories to and from the proto3 JSON that Temporal's tools write (`temporal workflow show
 * --output json`). `historyToJSON`/`historyFromJSON` of @temporalio/common cannot be used in this install:
 * @temporalio/common and @temporalio/proto each carry their own nested protobufjs, and common's protojson
 * refuses proto's types ("type must be a Type"). Here protojson comes from the copy that built the types.
 */
import { createRequire } from 'node:module';
import type { temporal } from '@temporalio/proto';

type History = temporal.api.history.v1.IHistory;
interface ProtoJson {
  toJson(type: unknown, message: unknown): unknown;
  fromJson(type: unknown, json: unknown, options?: { ignoreUnknownFields?: boolean }): unknown;
}

const here = createRequire(import.meta.url);
const fromProto = createRequire(here.resolve('@temporalio/proto'));
const proto = here('@temporalio/proto') as typeof import('@temporalio/proto');
const { patchProtobufRoot } = here('@temporalio/proto/lib/patch-protobuf-root') as { patchProtobufRoot<T>(root: T): T & { lookupType(name: string): unknown } };
const protojson = fromProto('protobufjs/ext/protojson') as ProtoJson;
const historyType = patchProtobufRoot(proto).lookupType('temporal.api.history.v1.History');

/** A fetched history as proto3 JSON text, one field per line, for a reviewable fixture. */
export function historyToJson(history: History): string {
  return JSON.stringify(protojson.toJson(historyType, proto.temporal.api.history.v1.History.fromObject(history)), null, 1) + '\n';
}

/** A history decoded from proto3 JSON, ready for `Worker.runReplayHistories`. */
export function historyFromJson(json: unknown): History {
  const history = protojson.fromJson(historyType, json, { ignoreUnknownFields: true });
  if (!history) throw new TypeError('not a workflow history');
  return history as History;
}
