/** What the balancer needs to know about a replica. */
export interface BalancedReplica {
  readonly healthy: boolean;
  /** Queries running plus callers waiting for one of its connections. */
  readonly busy: number;
}

/** How reads spread over healthy replicas. */
export type LoadBalancing = 'round-robin' | 'least-busy';

/** Picks the replica for the next read among the healthy ones, or undefined if none is healthy. */
export class ReplicaBalancer<R extends BalancedReplica> {
  readonly #replicas: readonly R[];
  readonly #strategy: LoadBalancing;
  #cursor = 0;

  constructor(replicas: readonly R[], strategy: LoadBalancing) {
    this.#replicas = replicas;
    this.#strategy = strategy;
  }

  /** The next replica, skipping `exclude` (one that just failed). */
  pick(exclude?: R): R | undefined {
    const replicas = this.#replicas;
    const count = replicas.length;
    if (count === 0) return undefined;
    if (this.#strategy === 'least-busy') {
      let best: R | undefined;
      // Read each replica's load once: `busy` may be computed (pool stats) on every access.
      let bestBusy = Number.POSITIVE_INFINITY;
      // Start from a rotating offset so equal loads still alternate.
      const start = this.#cursor++ % count;
      for (let step = 0; step < count; step += 1) {
        const replica = replicas[(start + step) % count]!;
        if (!replica.healthy || replica === exclude) continue;
        const busy = replica.busy;
        if (best === undefined || busy < bestBusy) {
          best = replica;
          bestBusy = busy;
        }
      }
      return best;
    }
    for (let step = 0; step < count; step += 1) {
      const replica = replicas[this.#cursor++ % count]!;
      if (replica.healthy && replica !== exclude) return replica;
    }
    return undefined;
  }
}
