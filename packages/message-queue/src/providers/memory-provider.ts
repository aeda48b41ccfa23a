import { pickGroup } from '../fair-dispatch.js';
import { maxPriority } from '../job-options.js';
import type {
  ChildrenResults,
  JobCounts,
  JobErrorEntry,
  JobInfo,
  JobRecord,
  JobState,
} from '../job-record.js';
import {
  allCapabilities,
  type CancelResult,
  type DeadLetteredParent,
  type ExchangeRequest,
  type ExchangeResponse,
  type LeasedJob,
  type LeaseRenewal,
  type MaintenanceResult,
  type ProviderCapabilities,
  type QueueProvider,
  type RetentionPolicy,
  type Settlement,
  type StalledRelease,
  type StalledReleaseResult,
} from '../provider.js';
import { Wakers } from './wakers.js';

interface Entry {
  record: JobRecord;
  state: JobState;
  /** Bumped on every enqueue so stale bucket entries are skipped (lazy deletion). */
  version: number;
  leaseUntil: number;
  /** The token of the current lease while active (see `JobRecord.lease`). */
  lease?: string;
  finishedAt?: number;
  result?: unknown;
  progress?: unknown;
  stalls: number;
  /**
   * The current run was cancelled while active. It belongs to that run only: cleared whenever
   * the job leaves the active state (settle, enqueue, dead-letter), so a later run of the same
   * id (redrive, re-add) is never aborted by it.
   */
  cancelled?: boolean;
  pendingChildren: number;
  children?: ChildrenResults;
  /** A flow parent's children that have settled once (a redriven child settles again). */
  settledChildren?: Set<string>;
}

interface Slot {
  id: string;
  version: number;
}

/** A FIFO with O(1) push and shift. */
class Fifo {
  items: Slot[] = [];
  head = 0;
  push(slot: Slot): void {
    this.items.push(slot);
  }
  unshift(slot: Slot): void {
    if (this.head > 0) {
      this.head -= 1;
      this.items[this.head] = slot;
    } else this.items.unshift(slot);
  }
  shift(): Slot | undefined {
    if (this.head >= this.items.length) return undefined;
    const slot = this.items[this.head];
    this.head += 1;
    if (this.head > 1024 && this.head * 2 > this.items.length) {
      this.items = this.items.slice(this.head);
      this.head = 0;
    }
    return slot;
  }
  get size(): number {
    return this.items.length - this.head;
  }
}

class MemoryQueue {
  entries = new Map<string, Entry>();
  /** group → priority bucket (index = priority) */
  waiting = new Map<string, Fifo[]>();
  waitingCount = 0;
  delayed: { id: string; version: number; at: number }[] = [];
  active = new Set<string>();
  completed = new Set<string>();
  dead = new Set<string>();
  waitingChildren = 0;
  paused = false;
  credits = new Map<string, number>();
  readonly wakers = new Wakers();
  cancelListeners = new Set<(id: string) => void>();
}

const capabilities: ProviderCapabilities = allCapabilities;

/** Copies through JSON so callers cannot mutate stored state (and payloads behave as on Redis). */
function clone<T>(value: T): T {
  return value === undefined ? value : (JSON.parse(JSON.stringify(value)) as T);
}

/**
 * The in-memory provider: one process, no persistence. For the demo, for users' unit tests
 * and as the reference semantics of the conformance suite.
 */
export class MemoryProvider implements QueueProvider {
  readonly name = 'memory';
  /** What this provider supports (also readable before constructing one). */
  static readonly capabilities: ProviderCapabilities = capabilities;
  readonly capabilities = capabilities;
  readonly #queues = new Map<string, MemoryQueue>();
  /** The last lease token handed out. */
  #leases = 0;

  #queue(name: string): MemoryQueue {
    let queue = this.#queues.get(name);
    if (!queue) {
      queue = new MemoryQueue();
      this.#queues.set(name, queue);
    }
    return queue;
  }

  #wake(queue: MemoryQueue): void {
    queue.wakers.wakeAll();
  }

  #enqueue(queue: MemoryQueue, entry: Entry, now: number, front = false): void {
    entry.version += 1;
    delete entry.cancelled;
    if (entry.record.availableAt > now) {
      entry.state = 'delayed';
      const item = { id: entry.record.id, version: entry.version, at: entry.record.availableAt };
      let low = 0;
      let high = queue.delayed.length;
      while (low < high) {
        const middle = (low + high) >> 1;
        if (queue.delayed[middle]!.at <= item.at) low = middle + 1;
        else high = middle;
      }
      queue.delayed.splice(low, 0, item);
      return;
    }
    entry.state = 'waiting';
    const group = entry.record.group ?? '';
    let buckets = queue.waiting.get(group);
    if (!buckets) {
      buckets = Array.from({ length: maxPriority + 1 }, () => new Fifo());
      queue.waiting.set(group, buckets);
    }
    const slot = { id: entry.record.id, version: entry.version };
    if (front) buckets[entry.record.priority]!.unshift(slot);
    else buckets[entry.record.priority]!.push(slot);
    queue.waitingCount += 1;
  }

  #popGroup(queue: MemoryQueue, group: string): Entry | undefined {
    const buckets = queue.waiting.get(group);
    if (!buckets) return undefined;
    for (let priority = maxPriority; priority >= 0; priority -= 1) {
      const bucket = buckets[priority]!;
      while (bucket.size > 0) {
        const slot = bucket.shift()!;
        const entry = queue.entries.get(slot.id);
        if (entry && entry.state === 'waiting' && entry.version === slot.version) {
          queue.waitingCount -= 1;
          return entry;
        }
      }
    }
    queue.waiting.delete(group);
    // Its credit too: the credits hold the groups with work, not every group ever seen.
    queue.credits.delete(group);
    return undefined;
  }

  #promote(queue: MemoryQueue, now: number): void {
    let due = 0;
    while (due < queue.delayed.length && queue.delayed[due]!.at <= now) due += 1;
    if (due === 0) return;
    for (const item of queue.delayed.splice(0, due)) {
      const entry = queue.entries.get(item.id);
      if (entry && entry.state === 'delayed' && entry.version === item.version)
        this.#enqueue(queue, entry, now);
    }
  }

  async add(queueName: string, records: JobRecord[], now: number): Promise<boolean[]> {
    const queue = this.#queue(queueName);
    // Every copy first: a payload JSON cannot carry fails the batch with nothing enqueued.
    const copies = records.map(clone);
    const added = copies.map((record) => {
      if (queue.entries.has(record.id)) return false;
      const entry: Entry = {
        record,
        state: 'waiting',
        version: 0,
        leaseUntil: 0,
        stalls: 0,
        pendingChildren: 0,
      };
      queue.entries.set(record.id, entry);
      this.#enqueue(queue, entry, now);
      return true;
    });
    this.#wake(queue);
    return added;
  }

  async addFlow(queueName: string, parent: JobRecord, children: JobRecord[], now: number): Promise<boolean> {
    const queue = this.#queue(queueName);
    if (queue.entries.has(parent.id) || children.some((child) => queue.entries.has(child.id))) return false;
    const entry: Entry = {
      record: clone(parent),
      state: 'waiting-children',
      version: 0,
      leaseUntil: 0,
      stalls: 0,
      pendingChildren: children.length,
      children: { results: {}, failures: {} },
    };
    queue.entries.set(parent.id, entry);
    queue.waitingChildren += 1;
    if (children.length === 0) this.#releaseParent(queue, entry, now);
    await this.add(queueName, children, now);
    return true;
  }

  #releaseParent(queue: MemoryQueue, parent: Entry, now: number): void {
    queue.waitingChildren -= 1;
    parent.record.availableAt = now;
    this.#enqueue(queue, parent, now);
    this.#wake(queue);
  }

  /** Flow parents dead-lettered by the current call (policy `fail`): reported to the worker. */
  #failedParents: DeadLetteredParent[] = [];

  /** The flow parents dead-lettered since the last call, cleared. */
  #takeFailedParents(): DeadLetteredParent[] {
    const parents = this.#failedParents;
    this.#failedParents = [];
    return parents;
  }

  #childSettled(
    queue: MemoryQueue,
    child: JobRecord,
    now: number,
    result: unknown,
    failure?: JobErrorEntry,
  ): void {
    const link = child.parent;
    if (!link) return;
    const parent = queue.entries.get(link.id);
    if (parent?.state !== 'waiting-children') return;
    const children = parent.children ?? { results: {}, failures: {} };
    parent.children = children;
    if (failure && link.onChildFailure === 'fail') {
      queue.waitingChildren -= 1;
      const message = `child ${child.id} of job ${link.id} failed: ${failure.message}`;
      parent.record.errors.push({
        attempt: parent.record.attemptsMade,
        name: 'ChildFailedError',
        code: 'NOA_MQ_CHILD_FAILED',
        message,
        at: now,
      });
      this.#toDead(queue, parent, now);
      this.#failedParents.push({ id: link.id, name: parent.record.name, message });
      return;
    }
    if (failure) {
      if (link.onChildFailure === 'continue') children.failures[child.id] = failure;
    } else {
      delete children.failures[child.id];
      children.results[child.id] = clone(result);
    }
    // A dead child redriven while its parent waits settles again: its new outcome replaces the
    // old one, but it is still one child (counting it twice released the parent early).
    parent.settledChildren ??= new Set();
    if (parent.settledChildren.has(child.id)) return;
    parent.settledChildren.add(child.id);
    parent.pendingChildren -= 1;
    if (parent.pendingChildren <= 0) this.#releaseParent(queue, parent, now);
  }

  #toDead(queue: MemoryQueue, entry: Entry, now: number): void {
    delete entry.cancelled;
    entry.state = 'failed';
    entry.finishedAt = now;
    entry.version += 1;
    queue.dead.add(entry.record.id);
  }

  /** Stores a settlement; false when it is refused because another lease holds the job. */
  #settle(queue: MemoryQueue, settlement: Settlement, now: number): boolean {
    const id = settlement.record.id;
    const entry = queue.entries.get(id);
    // Gone (retention, removeOnComplete of another run) or finished by another run: a stalled
    // worker's late outcome, refused like one while another worker runs the job.
    if (!entry) return false;
    // A stalled worker's late outcome while another worker runs the job: it must not touch that run.
    if (entry.state === 'active' && settlement.record.lease !== entry.lease) return false;
    if (entry.state !== 'active' && entry.state !== 'waiting' && entry.state !== 'delayed') return false;
    const wasActive = queue.active.delete(id);
    delete entry.cancelled;
    delete entry.lease;
    if (!wasActive) {
      // A stale worker settles a job that stalled and was requeued: take it off the queue.
      if (entry.state === 'waiting') queue.waitingCount -= 1;
      entry.version += 1;
    }
    if (settlement.kind === 'complete') {
      entry.state = 'completed';
      entry.finishedAt = now;
      entry.result = clone(settlement.result);
      this.#childSettled(queue, entry.record, now, settlement.result);
      if (entry.record.removeOnComplete) queue.entries.delete(id);
      else queue.completed.add(id);
      return true;
    }
    // The payload stays the stored one: the settlement carries the object the handler held,
    // with whatever it did to it (every try, getJob and the DLQ show the payload as added).
    const stored = entry.record.data;
    entry.record = clone({ ...settlement.record, data: undefined });
    entry.record.data = stored;
    delete entry.record.lease;
    if (settlement.retryAt === null) {
      this.#toDead(queue, entry, now);
      this.#childSettled(queue, entry.record, now, undefined, entry.record.errors.at(-1));
      return true;
    }
    entry.record.availableAt = settlement.retryAt;
    this.#enqueue(queue, entry, now);
    return true;
  }

  async exchange(queueName: string, request: ExchangeRequest): Promise<ExchangeResponse> {
    const queue = this.#queue(queueName);
    this.#takeFailedParents();
    let stale: string[] | undefined;
    for (const settlement of request.settle) {
      if (this.#settle(queue, settlement, request.now)) continue;
      stale ??= [];
      stale.push(settlement.record.id);
    }
    if (request.promoteDelayed) this.#promote(queue, request.now);
    const jobs: JobRecord[] = [];
    let lease: string | undefined;
    if (!queue.paused) {
      const weightOf = (group: string) => request.groupWeights[group] ?? request.defaultGroupWeight;
      while (jobs.length < request.fetch && queue.waitingCount > 0) {
        let entry: Entry | undefined;
        if (queue.waiting.size === 1) {
          const [group] = queue.waiting.keys();
          entry = this.#popGroup(queue, group!);
        } else {
          const group = pickGroup([...queue.waiting.keys()], weightOf, queue.credits);
          if (group === undefined) break;
          entry = this.#popGroup(queue, group);
        }
        if (!entry) continue;
        entry.state = 'active';
        entry.leaseUntil = request.leaseUntil;
        // One token per exchange: the jobs of one fetch share their lease.
        if (lease === undefined) {
          this.#leases += 1;
          lease = String(this.#leases);
        }
        entry.lease = lease;
        queue.active.add(entry.record.id);
        const record = clone(entry.record);
        record.lease = lease;
        jobs.push(record);
      }
    }
    if (request.settle.length > 0) this.#wake(queue);
    const response: ExchangeResponse = { jobs };
    if (stale) response.stale = stale;
    const parents = this.#takeFailedParents();
    if (parents.length > 0) response.parentsDeadLettered = parents;
    if (jobs.length === 0 && queue.delayed.length > 0) response.nextDueAt = queue.delayed[0]!.at;
    return response;
  }

  async extendLeases(
    queueName: string,
    jobs: readonly LeasedJob[],
    leaseUntil: number,
  ): Promise<LeaseRenewal> {
    const queue = this.#queue(queueName);
    const renewal: LeaseRenewal = { cancelled: [], lost: [] };
    for (const { id, lease } of jobs) {
      const entry = queue.entries.get(id);
      if (entry?.state !== 'active' || entry.lease !== lease) {
        renewal.lost.push(id);
        continue;
      }
      entry.leaseUntil = leaseUntil;
      if (entry.cancelled) renewal.cancelled.push(id);
    }
    return renewal;
  }

  /** Dead-letters an active job cancelled while its worker was gone (lease recovery, release). */
  #deadCancelled(queue: MemoryQueue, entry: Entry, now: number): void {
    entry.record.errors.push({
      attempt: entry.record.attemptsMade,
      name: 'JobCancelledError',
      code: 'NOA_MQ_JOB_CANCELLED',
      message: `job ${entry.record.id} was cancelled`,
      at: now,
    });
    this.#toDead(queue, entry, now);
    this.#childSettled(queue, entry.record, now, undefined, entry.record.errors.at(-1));
  }

  async release(
    queueName: string,
    records: JobRecord[],
    now: number,
    stalled?: StalledRelease,
  ): Promise<StalledReleaseResult | undefined> {
    const queue = this.#queue(queueName);
    this.#takeFailedParents();
    const counted: StalledReleaseResult = { stalled: 0, deadLettered: 0 };
    for (const record of records) {
      const entry = queue.entries.get(record.id);
      if (entry?.state !== 'active' || entry.lease !== record.lease) continue;
      if (!queue.active.delete(record.id)) continue;
      delete entry.lease;
      if (entry.cancelled) {
        this.#deadCancelled(queue, entry, now);
        counted.cancelled = (counted.cancelled ?? 0) + 1;
        continue;
      }
      if (stalled) {
        counted.stalled += 1;
        if (this.#stalledPast(queue, entry, stalled.maxStalls, now)) {
          counted.deadLettered += 1;
          continue;
        }
      }
      entry.record.availableAt = now;
      this.#enqueue(queue, entry, now, true);
    }
    this.#wake(queue);
    const parents = this.#takeFailedParents().length;
    if (parents > 0) counted.parentsDeadLettered = parents;
    return stalled || counted.cancelled || parents > 0 ? counted : undefined;
  }

  /** Counts a stall of an entry taken off active; past `maxStalls` dead-letters it (true). */
  #stalledPast(queue: MemoryQueue, entry: Entry, maxStalls: number, now: number): boolean {
    entry.stalls += 1;
    if (entry.stalls <= maxStalls) return false;
    entry.record.errors.push({
      attempt: entry.record.attemptsMade,
      name: 'JobStalledError',
      code: 'NOA_MQ_JOB_STALLED',
      message: `job stalled more than ${maxStalls} times`,
      at: now,
    });
    this.#toDead(queue, entry, now);
    this.#childSettled(queue, entry.record, now, undefined, entry.record.errors.at(-1));
    return true;
  }

  async maintain(
    queueName: string,
    now: number,
    maxStalls: number,
    retention: RetentionPolicy,
  ): Promise<MaintenanceResult> {
    const queue = this.#queue(queueName);
    this.#takeFailedParents();
    const result: MaintenanceResult = { recovered: 0, deadLettered: 0, removed: 0 };
    for (const id of [...queue.active]) {
      const entry = queue.entries.get(id)!;
      if (entry.leaseUntil > now) continue;
      queue.active.delete(id);
      delete entry.lease;
      if (entry.cancelled) {
        this.#deadCancelled(queue, entry, now);
        result.deadLettered += 1;
        continue;
      }
      if (this.#stalledPast(queue, entry, maxStalls, now)) {
        result.deadLettered += 1;
      } else {
        entry.record.availableAt = now;
        this.#enqueue(queue, entry, now, true);
        result.recovered += 1;
      }
    }
    result.removed += this.#trim(
      queue,
      queue.completed,
      retention.completedCount,
      now - retention.completedAgeMs,
    );
    result.removed += this.#trim(queue, queue.dead, retention.deadCount, now - retention.deadAgeMs);
    if (result.recovered > 0) this.#wake(queue);
    const parents = this.#takeFailedParents().length;
    if (parents > 0) result.parentsDeadLettered = parents;
    return result;
  }

  #trim(queue: MemoryQueue, set: Set<string>, maxCount: number, oldest: number): number {
    let removed = 0;
    for (const id of set) {
      const entry = queue.entries.get(id);
      const stale = !entry || (entry.finishedAt ?? 0) < oldest || set.size > maxCount;
      if (!stale) break;
      set.delete(id);
      queue.entries.delete(id);
      removed += 1;
    }
    return removed;
  }

  waitForWork(queueName: string, timeoutMs: number, signal: AbortSignal): Promise<void> {
    return this.#queue(queueName).wakers.wait(timeoutMs, signal);
  }

  async getJob(queueName: string, id: string): Promise<JobInfo | undefined> {
    const entry = this.#queue(queueName).entries.get(id);
    if (!entry) return undefined;
    const info: JobInfo = { ...clone(entry.record), state: entry.state };
    if (entry.progress !== undefined) info.progress = clone(entry.progress);
    if (entry.result !== undefined) info.result = clone(entry.result);
    if (entry.finishedAt !== undefined) info.finishedAt = entry.finishedAt;
    return info;
  }

  async counts(queueName: string): Promise<JobCounts> {
    const queue = this.#queue(queueName);
    let delayed = 0;
    for (const item of queue.delayed) {
      const entry = queue.entries.get(item.id);
      if (entry && entry.state === 'delayed' && entry.version === item.version) delayed += 1;
    }
    return {
      waiting: queue.waitingCount,
      delayed,
      active: queue.active.size,
      waitingChildren: queue.waitingChildren,
      completed: queue.completed.size,
      failed: queue.dead.size,
      paused: queue.paused,
    };
  }

  async pause(queueName: string): Promise<void> {
    this.#queue(queueName).paused = true;
  }

  async resume(queueName: string): Promise<void> {
    const queue = this.#queue(queueName);
    queue.paused = false;
    this.#wake(queue);
  }

  async drain(queueName: string, includeDelayed: boolean): Promise<number> {
    const queue = this.#queue(queueName);
    let removed = 0;
    const parents = new Set<string>();
    for (const [id, entry] of queue.entries) {
      if (entry.state === 'waiting' || (includeDelayed && entry.state === 'delayed')) {
        queue.entries.delete(id);
        if (entry.record.parent) parents.add(entry.record.parent.id);
        removed += 1;
      }
    }
    // A flow parent waiting on a removed child would wait for ever: removed too (as BullMQ's drain).
    for (const parentId of parents) {
      if (queue.entries.get(parentId)?.state !== 'waiting-children') continue;
      queue.entries.delete(parentId);
      queue.waitingChildren -= 1;
      removed += 1;
    }
    queue.waiting.clear();
    queue.waitingCount = 0;
    if (includeDelayed) queue.delayed = [];
    return removed;
  }

  async setProgress(queueName: string, id: string, progress: unknown): Promise<void> {
    const entry = this.#queue(queueName).entries.get(id);
    if (entry) entry.progress = clone(progress);
  }

  async cancel(queueName: string, id: string, now: number): Promise<CancelResult> {
    const queue = this.#queue(queueName);
    const entry = queue.entries.get(id);
    if (!entry) return { outcome: 'not-found' };
    if (entry.state === 'active') {
      entry.cancelled = true;
      for (const listener of queue.cancelListeners) listener(id);
      return { outcome: 'signalled' };
    }
    if (entry.state === 'waiting' || entry.state === 'delayed' || entry.state === 'waiting-children') {
      if (entry.state === 'waiting') queue.waitingCount -= 1;
      if (entry.state === 'waiting-children') queue.waitingChildren -= 1;
      entry.record.errors.push({
        attempt: entry.record.attemptsMade,
        name: 'JobCancelledError',
        code: 'NOA_MQ_JOB_CANCELLED',
        message: `job ${id} was cancelled`,
        at: now,
      });
      this.#toDead(queue, entry, now);
      this.#childSettled(queue, entry.record, now, undefined, entry.record.errors.at(-1));
      // Taken here, or a later call (of any queue) would report this cancel's parent.
      const parents = this.#takeFailedParents();
      return parents.length > 0
        ? { outcome: 'removed', parentsDeadLettered: parents }
        : { outcome: 'removed' };
    }
    return { outcome: 'not-found' };
  }

  async onCancel(queueName: string, listener: (id: string) => void): Promise<() => void> {
    const queue = this.#queue(queueName);
    queue.cancelListeners.add(listener);
    return () => queue.cancelListeners.delete(listener);
  }

  async childrenResults(queueName: string, parentId: string): Promise<ChildrenResults> {
    const entry = this.#queue(queueName).entries.get(parentId);
    return clone(entry?.children ?? { results: {}, failures: {} });
  }

  async listDead(queueName: string, offset: number, limit: number): Promise<JobInfo[]> {
    const queue = this.#queue(queueName);
    const ids = [...queue.dead].reverse().slice(offset, offset + limit);
    const jobs = await Promise.all(ids.map((id) => this.getJob(queueName, id)));
    return jobs.filter((job): job is JobInfo => job !== undefined);
  }

  async redrive(queueName: string, ids: string[] | undefined, now: number): Promise<number> {
    const queue = this.#queue(queueName);
    let moved = 0;
    for (const id of ids ?? [...queue.dead]) {
      const entry = queue.entries.get(id);
      if (!entry || !queue.dead.delete(id)) continue;
      entry.record.attemptsMade = 0;
      entry.record.availableAt = now;
      entry.stalls = 0;
      delete entry.finishedAt;
      this.#enqueue(queue, entry, now);
      moved += 1;
    }
    this.#wake(queue);
    return moved;
  }

  async purgeDead(queueName: string, ids: string[] | undefined): Promise<number> {
    const queue = this.#queue(queueName);
    let removed = 0;
    for (const id of ids ?? [...queue.dead]) {
      if (!queue.dead.delete(id)) continue;
      queue.entries.delete(id);
      removed += 1;
    }
    return removed;
  }

  async close(): Promise<void> {
    for (const queue of this.#queues.values()) this.#wake(queue);
  }

  async [Symbol.asyncDispose](): Promise<void> {
    await this.close();
  }
}
