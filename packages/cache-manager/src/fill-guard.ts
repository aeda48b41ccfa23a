/** Changes (keys, tags and prefixes) remembered one by one before they are forgotten at once. */
const REMEMBERED_CHANGES = 4_096;

/**
 * Whether an L2 read may put what it read into L1. A read answers with L2's value as it was when
 * Redis ran it; the change of a key that reached this instance while the read was in flight (a
 * local write, delete, expire or clear, or another instance's bus message) happened after that,
 * and a fill made after it put the old value back over it, served by this instance until its
 * TTL: its own `set` undone, a remote one missed for good (its message had come and gone).
 *
 * Every change bumps an epoch; a read records the epoch as it starts, and fills only if no
 * change since then reached its key (by the key, one of the value's tags, or a prefix). The
 * value is still returned to the caller: it asked before the change, and a re-read would cost
 * every racing reader a second round trip. A read that overlapped no change anywhere (the
 * common case) compares two numbers; one that did makes a map lookup per key and tag. Changes
 * are remembered by name up to {@link REMEMBERED_CHANGES}, then forgotten at once: a read that
 * started before that moment and overlapped a change fills nothing (the next read fills).
 */
export class FillGuard {
  #epoch = 0;
  /** Reads started before this epoch cannot tell which changes they overlapped. */
  #forgottenBefore = 0;
  readonly #keys = new Map<string, number>();
  readonly #tags = new Map<string, number>();
  readonly #prefixes = new Map<string, number>();

  /** To record as an L2 read that may fill L1 starts (see {@link mayFill}). */
  get epoch(): number {
    return this.#epoch;
  }

  /** Whether a value of `fullKey` with `tags`, read from L2 by a read that started at `since`, may fill L1. */
  mayFill(fullKey: string, tags: readonly string[], since: number): boolean {
    if (since === this.#epoch) return true;
    if (since < this.#forgottenBefore) return false;
    if ((this.#keys.get(fullKey) ?? 0) > since) return false;
    if (this.#tags.size > 0) {
      for (const tag of tags) if ((this.#tags.get(tag) ?? 0) > since) return false;
    }
    for (const [prefix, epoch] of this.#prefixes) {
      if (epoch > since && fullKey.startsWith(prefix)) return false;
    }
    return true;
  }

  /** A write, delete or expire of `fullKey` (here, or another instance's). */
  changedKey(fullKey: string): void {
    this.#remember(this.#keys, fullKey);
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
    this.#epoch += 1;
    if (this.#keys.size + this.#tags.size + this.#prefixes.size >= REMEMBERED_CHANGES) {
      this.#keys.clear();
      this.#tags.clear();
      this.#prefixes.clear();
      this.#forgottenBefore = this.#epoch;
    }
    changes.set(name, this.#epoch);
  }
}
