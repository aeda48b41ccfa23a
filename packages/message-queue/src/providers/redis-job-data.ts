import type { Cluster, Redis } from 'ioredis';
import type {
  ChildrenResults,
  JobCounts,
  JobErrorEntry,
  JobInfo,
  JobRecord,
  JobState,
} from '../job-record.js';
import type { DeadLetteredParent, StalledRelease, StalledReleaseResult } from '../provider.js';
import { decodeRecord } from './record-codec.js';

/**
 * Job data that the two Redis-backed stores (`RedisProvider`, `RedisJobStateStore`) write and
 * read the same way: the error entries their scripts append, a job's info from its fields, a
 * flow parent's children results, the record a redrive requeues, counts and
 * the dead-letter list.
 */

/** The error a job gets when it is dead-lettered for stalling more than `maxStalls` times. */
export function stalledErrorEntry(maxStalls: number, now: number): JobErrorEntry {
  return {
    attempt: 0,
    name: 'JobStalledError',
    code: 'NOA_MQ_JOB_STALLED',
    message: `job stalled more than ${maxStalls} times`,
    at: now,
  };
}

/**
 * The first arguments of a `release` script (both Redis-backed stores' scripts read them alike):
 * now, and with `stalled` the stall limit and the error a job past it is dead-lettered with.
 */
export function releaseScriptHead(now: number, stalled: StalledRelease | undefined): (string | number)[] {
  return [
    now,
    stalled ? stalled.maxStalls : '',
    stalled ? JSON.stringify(stalledErrorEntry(stalled.maxStalls, now)) : '',
  ];
}

/**
 * What a `release` reports from the script's counts (`[stalls, deadLettered,
 * parentsDeadLettered, cancelled]`): with `stalled` always, else when it dead-lettered jobs.
 */
export function releaseResult(
  stalled: StalledRelease | undefined,
  reply: readonly number[] | undefined,
): StalledReleaseResult | undefined {
  const parents = reply?.[2] ?? 0;
  const cancelled = reply?.[3] ?? 0;
  if (!stalled && parents === 0 && cancelled === 0) return undefined;
  const result: StalledReleaseResult = { stalled: reply?.[0] ?? 0, deadLettered: reply?.[1] ?? 0 };
  if (parents > 0) result.parentsDeadLettered = parents;
  if (cancelled > 0) result.cancelled = cancelled;
  return result;
}

/** The `count` flow parents (id, name, message each) a script reply lists from `start`. */
export function deadParentsIn(reply: readonly unknown[], start: number, count: number): DeadLetteredParent[] {
  const parents: DeadLetteredParent[] = [];
  for (let index = start; index < start + 3 * count; index += 3) {
    parents.push({
      id: String(reply[index]),
      name: String(reply[index + 1]),
      message: String(reply[index + 2]),
    });
  }
  return parents;
}

/** The error a job gets when it is cancelled before it runs. */
export function cancelledErrorEntry(id: string, now: number): JobErrorEntry {
  return {
    attempt: 0,
    name: 'JobCancelledError',
    code: 'NOA_MQ_JOB_CANCELLED',
    message: `job ${id} was cancelled`,
    at: now,
  };
}

/** A job's info from its stored record and fields (empty strings: not set). */
export function jobInfoOf(
  raw: string,
  state: JobState,
  finishedAt: string,
  result: string,
  progress: string,
  terminalError: string,
): JobInfo {
  const info: JobInfo = { ...decodeRecord(raw), state };
  if (terminalError) info.errors = [...info.errors, JSON.parse(terminalError) as JobErrorEntry];
  if (finishedAt) info.finishedAt = Number(finishedAt);
  if (result) info.result = JSON.parse(result);
  if (progress) info.progress = JSON.parse(progress);
  return info;
}

/** A flow parent's children results and failures, from its `deps:<id>` hash. */
export async function readChildrenResults(redis: Redis | Cluster, depsKey: string): Promise<ChildrenResults> {
  const fields = await redis.hgetall(depsKey);
  const results: Record<string, unknown> = {};
  const failures: Record<string, JobErrorEntry> = {};
  for (const [field, value] of Object.entries(fields)) {
    if (field.startsWith('r:')) results[field.slice(2)] = JSON.parse(value);
    else if (field.startsWith('f:')) failures[field.slice(2)] = JSON.parse(value) as JobErrorEntry;
  }
  return { results, failures };
}

/** The record a dead job is requeued with by a redrive: its tries start over, available now. */
export function redrivenRecord(info: JobInfo, now: number): JobRecord {
  const { state: _state, result: _result, progress: _progress, finishedAt: _finishedAt, ...record } = info;
  return { ...record, attemptsMade: 0, availableAt: now };
}

/** `records` in chunks of `size` (the jobs of one `add` script call each). */
export function chunksOf<T>(records: T[], size: number): T[][] {
  const chunks: T[][] = [];
  for (let index = 0; index < records.length; index += size) chunks.push(records.slice(index, index + size));
  return chunks;
}

/** The counts a `counts` script returns, as {@link JobCounts}. */
export function countsOf(reply: unknown): JobCounts {
  const [waiting, delayed, active, waitingChildren, completed, failed, paused] = reply as [
    number,
    number,
    number,
    number,
    number,
    number,
    string,
  ];
  return { waiting, delayed, active, waitingChildren, completed, failed, paused: paused === '1' };
}

/** The infos of the dead-letter page `offset`, `limit` (newest first) read with `getJob`. */
export async function listDeadIn(
  redis: Redis | Cluster,
  prefix: string,
  offset: number,
  limit: number,
  getJob: (id: string) => Promise<JobInfo | undefined>,
): Promise<JobInfo[]> {
  const ids = await redis.zrevrange(`${prefix}dead`, offset, offset + limit - 1);
  const jobs = await Promise.all(ids.map(getJob));
  return jobs.filter((job): job is JobInfo => job !== undefined);
}

/**
 * The failed jobs among `ids` (default: every dead job), 500 at a time read with `getJob`: each
 * page is handed to `requeue`, which sends the script call that moves them.
 */
export async function forEachDeadPage(
  redis: Redis | Cluster,
  prefix: string,
  ids: string[] | undefined,
  getJob: (id: string) => Promise<JobInfo | undefined>,
  requeue: (failed: JobInfo[]) => Promise<void>,
): Promise<void> {
  const targets = ids ?? (await redis.zrange(`${prefix}dead`, 0, -1));
  for (let index = 0; index < targets.length; index += 500) {
    const infos = await Promise.all(targets.slice(index, index + 500).map(getJob));
    const failed = infos.filter((info): info is JobInfo => info?.state === 'failed');
    if (failed.length > 0) await requeue(failed);
  }
}
