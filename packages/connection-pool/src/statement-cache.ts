/**
 * A bounded LRU of prepared statement names for one connection: SQL text → a name unique on
 * that connection. Names are never reused, so an evicted statement can be dropped lazily.
 */
export class StatementCache {
  readonly #max: number;
  readonly #onEvict: (name: string) => void;
  readonly #names = new Map<string, string>();
  #next = 0;

  constructor(max: number, onEvict: (name: string) => void) {
    this.#max = max;
    this.#onEvict = onEvict;
  }

  /** The statement name for `sql`, creating it (and evicting the least recently used) as needed. */
  nameFor(sql: string): string {
    const existing = this.#names.get(sql);
    if (existing !== undefined) {
      // Move to the young end of the insertion order.
      this.#names.delete(sql);
      this.#names.set(sql, existing);
      return existing;
    }
    if (this.#names.size >= this.#max) {
      const [oldestSql, oldestName] = this.#names.entries().next().value!;
      this.#names.delete(oldestSql);
      this.#onEvict(oldestName);
    }
    this.#next += 1;
    const name = `noa_s${this.#next}`;
    this.#names.set(sql, name);
    return name;
  }

  /**
   * Forgets every statement without evicting it (the server already dropped them: `DEALLOCATE
   * ALL`, `DISCARD ALL`) and returns their names. New names keep counting up, so none is reused.
   */
  forgetAll(): string[] {
    const names = [...this.#names.values()];
    this.#names.clear();
    return names;
  }

  /** Statements cached now. */
  get size(): number {
    return this.#names.size;
  }
}
