/** Changes (keys, tags and prefixes) remembered one by one before they are forgotten at once. */
const REMEMBERED_CHANGES = 4_096;

/** The last change of a key: its epoch, the write it announced, and the last other change's epoch. */
interface KeyChange {
  epoch: number;
  /** The id of the write the change announced; undefined for a delete, expire, or a change without one. */
  writeId: number | undefined;
  /** The epoch of the last change before the run of changes that announced `writeId` (0: none remembered). */
  before: number;
}

/**
 * Whether an L2 read may put what it read into L1. A read answers with L2's value as it was when
 * Redis ran it; the change of a key that reached this instance while the read was in flight (a
 * local write, delete, expire or clear, or another instance's bus message) happened after that,
 * and a fill made after it put the old value back over it, served by this instance until its
 * TTL: its own `set` undone, a remote one missed for good (its message had come and gone).
 *
 * Every change bumps an epoch; a read records the epoch as it starts, and fills only if no
 * change since then reached its key (by the key, one of the value's tags, or a prefix), or if
 * every change of its key since then was the write of the very value it read: a `set` names
 * its write (`CacheEntry.writeId`, carried by the value and by the bus message), and a read
 * that answered with that value is not older than the change (equality, not order: no clock
 * is compared). The value is still returned to the caller: it asked before the change, and a
 * re-read would cost every racing reader a second round trip. A read that overlapped no change
 * anywhere (the common case) compares two numbers; one that did makes a map lookup per key and
 * tag. Changes
 * are remembered by name up to {@link REMEMBERED_CHANGES}, then forgotten at once: a read that
 * started before that moment and overlapped a change fills nothing (the next read fills).
 */
export class FillGuard {
  #epoch = 0;
  /** Reads started before this epoch cannot tell which changes they overlapped. */
  #forgottenBefore = 0;
  readonly #keys = new Map<string, KeyChange>();
  readonly #tags = new Map<string, number>();
  readonly #prefixes = new Map<string, number>();

  /** To record as an L2 read that may fill L1 starts (see {@link mayFill}). */
  get epoch(): number {
    return this.#epoch;
  }

  /**
   * Whether a value of `fullKey` with `tags` and `writeId` (see `CacheEntry.writeId`), read from
   * L2 by a read that started at `since`, may fill L1.
   */
  mayFill(fullKey: string, tags: readonly string[], since: number, writeId?: number): boolean {
    if (since === this.#epoch) return true;
    if (since < this.#forgottenBefore) return false;
    const change = this.#keys.get(fullKey);
    if (
      change !== undefined &&
      change.epoch > since &&
      (writeId === undefined || change.writeId !== writeId || change.before > since)
    )
      return false;
    if (this.#tags.size > 0) {
      for (const tag of tags) if ((this.#tags.get(tag) ?? 0) > since) return false;
    }
    for (const [prefix, epoch] of this.#prefixes) {
      if (epoch > since && fullKey.startsWith(prefix)) return false;
    }
    return true;
  }

  /**
   * Whether a delete or expire of one of `tags` (a tag delete or expire, here or another
   * instance's) came after `since`: the question of a factory run that chose its tags through
   * its context after it started (see `startFactory`). Changes forgotten since then cannot be
   * told: answered no, as before runs asked (a run is not cached for a tag change it cannot name,
   * or an instance hearing 4,096 changes per run length would cache no such run).
   */
  tagsChangedSince(tags: readonly string[], since: number): boolean {
    if (since === this.#epoch || since < this.#forgottenBefore || this.#tags.size === 0) return false;
    for (const tag of tags) if ((this.#tags.get(tag) ?? 0) > since) return true;
    return false;
  }

  /**
   * A write, delete or expire of `fullKey` (here, or another instance's); `writeId`: a write's
   * id, when the change is a write that announced it.
   */
  changedKey(fullKey: string, writeId?: number): void {
    const previous = this.#keys.get(fullKey);
    const epoch = this.#next();
    // `previous` may have been forgotten by #next: then no read that overlapped it may fill.
    const known = this.#keys.get(fullKey) === previous ? previous : undefined;
    const before = writeId !== undefined && known?.writeId === writeId ? known.before : (known?.epoch ?? 0);
    this.#keys.set(fullKey, { epoch, writeId, before });
  }

  /** A delete or expire of the keys with any of `tags`. */
  changedTags(tags: readonly string[]): void {
    for (const tag of tags) this.#remember(this.#tags, tag);
  }

  /** A clear of the keys under `fullPrefix` (every key for the empty prefix). */
  changedPrefix(fullPrefix: string): void {
    this.#remember(this.#prefixes, fullPrefix);
  }

  #remember(changes: Map<string, number>, name: string): void {
    changes.set(name, this.#next());
  }

  /** The next epoch, once every change is forgotten when too many are remembered. */
  #next(): number {
    this.#epoch += 1;
    if (this.#keys.size + this.#tags.size + this.#prefixes.size >= REMEMBERED_CHANGES) {
      this.#keys.clear();
      this.#tags.clear();
      this.#prefixes.clear();
      this.#forgottenBefore = this.#epoch;
    }
    return this.#epoch;
  }
}
