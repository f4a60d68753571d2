/**
 * Error types that no retry can fix, and the error classes shared across activities, workers and the CLI.
 * Activities throw them as ApplicationFailures of these types or as these classes, whose `name` Temporal
 * reports as the failure `type`; so each class takes its name from `ErrorType`, and retry policies list the
 * non-retryable ones from the same table (bundle-safe: workflow code imports it).
 */
export const ErrorType = {
  InvalidData: 'InvalidDataError',
  NotFound: 'NotFoundError',
  ChannelConflict: 'ChannelConflictError',
  InvalidRequest: 'InvalidRequestError',
  InvalidInput: 'InvalidInputError',
  RegistryConflict: 'RegistryConflictError',
  GateRefused: 'GateRefusedError',
  InvalidDigest: 'InvalidDigestError',
  ArtifactIntegrity: 'ArtifactIntegrityError',
  /** A recipe asks for more than its line's limits allow (schemas/io.ts LineLimits): the same recipe is refused on every try. */
  RecipeLimit: 'RecipeLimitError',
  /** The audit log or its roots file fails verification, so no root may be signed: only a person's repair helps. */
  AuditLogBroken: 'AuditLogBrokenError',
} as const;
export type ErrorTypeName = (typeof ErrorType)[keyof typeof ErrorType];

/** Input that can never succeed (bad name, malformed digest, unknown line): retrying will not help. */
export class InvalidInputError extends Error {
  constructor(message: string, options?: ErrorOptions) {
    super(message, options);
    this.name = ErrorType.InvalidInput;
  }
}

/** A thing named by the caller does not exist (a line, a version, a training run). */
export class NotFoundError extends Error {
  constructor(
    readonly what: string,
    message?: string,
  ) {
    super(message ?? `${what} does not exist`);
    this.name = ErrorType.NotFound;
  }
}

/** An idempotency key or natural key was reused for different content, or a precondition does not hold. */
export class RegistryConflictError extends Error {
  constructor(message: string) {
    super(message);
    this.name = ErrorType.RegistryConflict;
  }
}

/** A channel moved since the caller read it: the compare-and-swap on its epoch failed. */
export class ChannelConflictError extends Error {
  constructor(
    readonly line: string,
    readonly channel: string,
    readonly expectedEpoch: number,
    readonly actualEpoch: number,
    readonly actualVersion: number | null,
  ) {
    super(
      `channel ${line}@${channel} moved: expected epoch ${expectedEpoch}, but it is at epoch ${actualEpoch}` +
        (actualVersion === null ? ' (empty)' : ` (version ${actualVersion})`) +
        '; re-read the channel and decide again',
    );
    this.name = ErrorType.ChannelConflict;
  }
}

/** A promotion the gate did not allow (failed verdict without an override, or a decision about another version). */
export class GateRefusedError extends Error {
  constructor(message: string) {
    super(message);
    this.name = ErrorType.GateRefused;
  }
}

/** A content digest that is not 64 lower-case hex characters (which is also how traversal strings are refused). */
export class InvalidDigestError extends Error {
  constructor(readonly digest: string) {
    super(`not a sha256 digest (64 lower-case hex characters): ${JSON.stringify(digest.length > 80 ? digest.slice(0, 80) + '…' : digest)}`);
    this.name = ErrorType.InvalidDigest;
  }
}

/** Stored bytes that are missing, replaced by a link, or no longer hash to their name. */
export class ArtifactIntegrityError extends Error {
  constructor(
    readonly digest: string,
    readonly path: string,
    readonly problem: string,
  ) {
    super(`artifact ${digest} at ${path}: ${problem}`);
    this.name = ErrorType.ArtifactIntegrity;
  }
}

/** The audit log or its signed roots do not verify, so sealing refuses; retrying signs nothing until someone repairs it. */
export class AuditLogBrokenError extends Error {
  constructor(reason: string) {
    super(`refusing to sign the audit root: ${reason}`);
    this.name = ErrorType.AuditLogBroken;
  }
}
