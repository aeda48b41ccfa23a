import type { Cluster, Redis } from 'ioredis';
import type { ChildrenResults, JobErrorEntry, JobInfo, JobRecord, JobState } from '../job-record.js';
import { decodeRecord } from './record-codec.js';

/**
 * Job data that the two Redis-backed stores (`RedisProvider`, `RedisJobStateStore`) write and
 * read the same way: the error entries their scripts append, a job's info from its fields, a
 * flow parent's children results and the record a redrive requeues.
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

/**
 * The ids among `ids` that the `ZADD XX active` + `ZMSCORE cancelled` pipeline of a lease
 * heartbeat found cancelled (a score at their index). A failed command rejects.
 */
export function cancelledAmong(ids: string[], replies: [Error | null, unknown][] | null): string[] {
  if (!replies) throw new Error('lease heartbeat pipeline was discarded');
  for (const [error] of replies) if (error) throw error;
  const scores = replies[1]?.[1];
  if (!Array.isArray(scores)) return [];
  const cancelled: string[] = [];
  for (const [index, score] of scores.entries()) if (score !== null) cancelled.push(ids[index]!);
  return cancelled;
}
