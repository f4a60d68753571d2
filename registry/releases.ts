/** The registry's releases module: channels, the releases that move them (compare-and-swap on the epoch), and the applications bound to them. The Registry facade composes it. */
import { and, asc, eq } from 'drizzle-orm';
import { applications, channels, gateDecisions, lines, releases } from '../schemas/db/index.ts';
import { ChannelConflictError, GateRefusedError, InvalidInputError, NotFoundError, RegistryConflictError } from '../schemas/contracts/errors.ts';
import { appendAuditEntry } from './audit.ts';
import { prepared } from './db.ts';
import { BindApplicationInput, MoveChannelInput, Name, parseInput } from './inputs.ts';
import type { ApplicationInfo, ChannelInfo, ReleaseInfo } from './types.ts';
import { lineRow, pgError, toApplicationInfo, toReleaseInfo, versionRow } from './rows.ts';
import { EvaluationsRegistry } from './evaluations.ts';

/** Channels, the releases that move them (compare-and-swap on the epoch), and the applications bound to them. */
export class ReleasesRegistry extends EvaluationsRegistry {
  // ---- channels, releases, applications ----------------------------------------------------------------

  /** The channels of a line and where they point. */
  async getChannels(line: string): Promise<ChannelInfo[]> {
    const l = await lineRow(this.db, line);
    const rows = await this.db.select().from(channels).where(eq(channels.lineId, l.id)).orderBy(asc(channels.id));
    return rows.map((c) => ({ channel: c.name, version: c.versionNumber, epoch: c.epoch, updatedAt: c.updatedAt }));
  }

  /** Creates a custom channel (empty, epoch 0) or returns it. Idempotent; audited on creation. */
  async ensureChannel(input: { line: string; channel: string; actor: string }): Promise<ChannelInfo> {
    const channel = parseInput('ensureChannel', Name, input.channel);
    return this.db.transaction(async (tx) => {
      const line = await lineRow(tx, input.line);
      const [created] = await tx.insert(channels).values({ lineId: line.id, name: channel }).onConflictDoNothing().returning();
      if (created) await appendAuditEntry(tx, { actor: input.actor, action: 'channel.create', subject: `${line.name}@${channel}`, details: {} });
      const row =
        created ??
        (
          await tx
            .select()
            .from(channels)
            .where(and(eq(channels.lineId, line.id), eq(channels.name, channel)))
        )[0]!;
      return { channel: row.name, version: row.versionNumber, epoch: row.epoch, updatedAt: row.updatedAt };
    });
  }

  /**
   * Moves a channel to version `to` if it is still at `expectedEpoch` (compare-and-swap), writing the release
   * record and its audit entry in the same transaction. Throws ChannelConflictError when the epoch moved.
   * Idempotent by requestKey: a retry of a move that committed returns the same result.
   */
  async moveChannel(input: {
    line: string;
    channel: string;
    to: number;
    expectedEpoch: number;
    actor: string;
    reason: string;
    gateDecisionId?: number;
    requestKey: string;
  }): Promise<{ epoch: number; releaseId: number; from: number | null; to: number }> {
    const p = parseInput('moveChannel', MoveChannelInput, input);
    return (await this.move(p)) as { epoch: number; releaseId: number; from: number | null; to: number };
  }

  /**
   * Empties a channel (compare-and-swap, like a move): a line's first candidate leaves `canary` when there is no
   * released version to go back to. Recorded as a release with no target version; idempotent by requestKey.
   */
  async clearChannel(input: {
    line: string;
    channel: string;
    expectedEpoch: number;
    actor: string;
    reason: string;
    requestKey: string;
  }): Promise<{ epoch: number; releaseId: number; from: number | null; to: null }> {
    const p = parseInput('clearChannel', MoveChannelInput.omit({ to: true, gateDecisionId: true }), input);
    return (await this.move({ ...p, to: null })) as { epoch: number; releaseId: number; from: number | null; to: null };
  }

  protected async move(p: {
    line: string;
    channel: string;
    to: number | null;
    expectedEpoch: number;
    actor: string;
    reason: string;
    gateDecisionId?: number | undefined;
    requestKey: string;
  }): Promise<{ epoch: number; releaseId: number; from: number | null; to: number | null }> {
    try {
      return await this.db.transaction(async (tx) => {
        // The row lock orders concurrent movers; each then sees the committed epoch of the one before.
        const [found] = await prepared(
          tx
            .select({ ch: channels, lineId: lines.id })
            .from(channels)
            .innerJoin(lines, eq(lines.id, channels.lineId))
            .where(and(eq(lines.name, p.line), eq(channels.name, p.channel)))
            .for('update', { of: channels }),
        );
        if (!found) {
          const line = await lineRow(tx, p.line);
          const names = (await tx.select({ name: channels.name }).from(channels).where(eq(channels.lineId, line.id))).map((c) => c.name);
          throw new NotFoundError(
            `channel ${p.line}@${p.channel}`,
            `channel ${p.line}@${p.channel} does not exist (channels: ${names.join(', ')}); create it with ensureChannel`,
          );
        }
        const { ch, lineId } = found;
        // Read after the lock, so a retry sees the release its first attempt committed.
        const [[prior], gate] = await Promise.all([
          prepared(tx.select().from(releases).where(eq(releases.requestKey, p.requestKey))),
          p.gateDecisionId === undefined
            ? undefined
            : prepared(tx.select().from(gateDecisions).where(eq(gateDecisions.id, p.gateDecisionId))).then((r) => r[0] ?? null),
        ]);
        if (prior) {
          if (prior.channelId !== ch.id || prior.toNumber !== p.to) {
            throw new RegistryConflictError(`request key ${p.requestKey} was already used for another move (release ${prior.id})`);
          }
          return { epoch: prior.epoch, releaseId: prior.id, from: prior.fromNumber, to: prior.toNumber };
        }
        if (ch.epoch !== p.expectedEpoch) throw new ChannelConflictError(p.line, p.channel, p.expectedEpoch, ch.epoch, ch.versionNumber);
        if (gate !== undefined) {
          if (gate === null || gate.lineId !== lineId) throw new NotFoundError(`gate decision ${p.gateDecisionId} of line ${p.line}`);
          if (gate.candidateNumber !== p.to)
            throw new GateRefusedError(`gate decision ${gate.id} is about ${p.line}@${gate.candidateNumber}, not ${p.line}@${p.to}`);
          if (gate.verdict !== 'pass' && gate.overrideActor === null) {
            throw new GateRefusedError(`gate decision ${gate.id} failed ${p.line}@${p.to} and was not overridden; it cannot be promoted on it`);
          }
        }
        const epoch = ch.epoch + 1;
        // The version's existence is checked by the foreign keys of both writes (mapped to NotFoundError below).
        const [, [release]] = await Promise.all([
          prepared(tx.update(channels).set({ versionNumber: p.to, epoch, updatedAt: new Date() }).where(eq(channels.id, ch.id))),
          prepared(
            tx
              .insert(releases)
              .values({
                lineId,
                channelId: ch.id,
                fromNumber: ch.versionNumber,
                toNumber: p.to,
                epoch,
                actor: p.actor,
                reason: p.reason,
                gateDecisionId: p.gateDecisionId ?? null,
                requestKey: p.requestKey,
              })
              .returning({ id: releases.id }),
          ),
        ]);
        await appendAuditEntry(tx, {
          actor: p.actor,
          action: 'channel.move',
          subject: `${p.line}@${p.channel}`,
          details: {
            from: ch.versionNumber,
            to: p.to,
            epoch,
            reason: p.reason,
            gateDecisionId: p.gateDecisionId ?? null,
            requestKey: p.requestKey,
            releaseId: release!.id,
          },
        });
        return { epoch, releaseId: release!.id, from: ch.versionNumber, to: p.to };
      });
    } catch (err) {
      const { code, constraint } = pgError(err);
      if (code === '23503' && (constraint === 'releases_to_fk' || constraint === 'channels_version_fk')) throw new NotFoundError(`version ${p.line}@${p.to}`);
      // The same request key committed on another channel at the same moment.
      if (code === '23505' && constraint === 'releases_request_key_key')
        throw new RegistryConflictError(`request key ${p.requestKey} was used by a concurrent move`);
      throw err;
    }
  }

  /** The release a move with `requestKey` recorded, or null: how a retried step finds what its first attempt did. */
  async getReleaseByKey(line: string, requestKey: string): Promise<ReleaseInfo | null> {
    const l = await lineRow(this.db, line);
    const [row] = await this.db
      .select({ r: releases, channel: channels.name })
      .from(releases)
      .innerJoin(channels, eq(channels.id, releases.channelId))
      .where(and(eq(releases.lineId, l.id), eq(releases.requestKey, requestKey)));
    return row ? toReleaseInfo(row.r, line, row.channel) : null;
  }

  /** Releases of a line (optionally of one channel), oldest first. */
  async listReleases(line: string, opts: { channel?: string } = {}): Promise<ReleaseInfo[]> {
    const l = await lineRow(this.db, line);
    const rows = await this.db
      .select({ r: releases, channel: channels.name })
      .from(releases)
      .innerJoin(channels, eq(channels.id, releases.channelId))
      .where(and(eq(releases.lineId, l.id), opts.channel === undefined ? undefined : eq(channels.name, opts.channel)))
      .orderBy(asc(releases.id));
    return rows.map(({ r, channel }) => toReleaseInfo(r, line, channel));
  }

  /**
   * Binds (or re-binds) an application to `line@channel`. `hold` pins the version given, or the channel's
   * current one. Audited with the binding before and after.
   */
  async bindApplication(input: {
    app: string;
    line: string;
    channel: string;
    policy: 'follow' | 'hold';
    pinnedVersion?: number;
    actor: string;
    reason?: string;
  }): Promise<ApplicationInfo> {
    const p = parseInput('bindApplication', BindApplicationInput, input);
    return this.db.transaction(async (tx) => {
      const line = await lineRow(tx, p.line);
      const [ch] = await tx
        .select()
        .from(channels)
        .where(and(eq(channels.lineId, line.id), eq(channels.name, p.channel)));
      if (!ch) throw new NotFoundError(`channel ${p.line}@${p.channel}`);
      let pinned: number | null = null;
      if (p.policy === 'hold') {
        pinned = p.pinnedVersion ?? ch.versionNumber;
        if (pinned === null) throw new InvalidInputError(`bindApplication: ${p.line}@${p.channel} is empty; name the version to hold`);
        await versionRow(tx, line, pinned);
      } else if (p.pinnedVersion !== undefined) {
        throw new InvalidInputError('bindApplication: a following application pins no version');
      }
      const [before] = await tx
        .select({ a: applications, line: lines.name })
        .from(applications)
        .innerJoin(lines, eq(lines.id, applications.lineId))
        .where(eq(applications.name, p.app))
        .for('update', { of: applications });
      if (before && before.line === p.line && before.a.channel === p.channel && before.a.policy === p.policy && before.a.pinnedNumber === pinned) {
        // Binding it again as it is changes nothing and records nothing (a retried activity).
        return toApplicationInfo(before.a, p.line, ch.versionNumber);
      }
      const now = new Date();
      const [row] = await tx
        .insert(applications)
        .values({ name: p.app, lineId: line.id, channel: p.channel, policy: p.policy, pinnedNumber: pinned })
        .onConflictDoUpdate({ target: applications.name, set: { lineId: line.id, channel: p.channel, policy: p.policy, pinnedNumber: pinned, updatedAt: now } })
        .returning();
      await appendAuditEntry(tx, {
        actor: p.actor,
        action: 'application.bind',
        subject: p.app,
        details: {
          reason: p.reason ?? null,
          before: before ? { line: before.line, channel: before.a.channel, policy: before.a.policy, pinned: before.a.pinnedNumber } : null,
          after: { line: p.line, channel: p.channel, policy: p.policy, pinned },
        },
      });
      return {
        app: row!.name,
        line: p.line,
        channel: p.channel,
        policy: p.policy,
        pinnedVersion: pinned,
        resolvedVersion: pinned ?? ch.versionNumber,
        updatedAt: row!.updatedAt,
      };
    });
  }

  /** Every application with the version it resolves to now. */
  async listApplications(): Promise<ApplicationInfo[]> {
    const rows = await this.db
      .select({ a: applications, line: lines.name, channelVersion: channels.versionNumber })
      .from(applications)
      .innerJoin(lines, eq(lines.id, applications.lineId))
      .innerJoin(channels, and(eq(channels.lineId, applications.lineId), eq(channels.name, applications.channel)))
      .orderBy(asc(applications.name));
    return rows.map(({ a, line, channelVersion }) => toApplicationInfo(a, line, channelVersion));
  }
}
