import { beforeAll } from 'vitest';

/** A test or suite as `beforeAll` hands it over: enough to count the cases that will run. */
interface TaskTree {
  type: string;
  mode: string;
  tasks?: readonly TaskTree[];
}

/** The cases of `suite` (nested suites included) that will run: not skipped, not filtered out by `-t`. */
function runningCases(suite: TaskTree): number {
  let count = 0;
  for (const task of suite.tasks ?? []) {
    if (task.type === 'suite') count += runningCases(task);
    else if (task.mode === 'run') count += 1;
  }
  return count;
}

/**
 * A point where the cases of a `describe.concurrent` block wait for each other: once every case
 * still in the game has arrived, `action` runs once with what each brought, and every arrival
 * resolves (or rejects) with its outcome. A case that ends, passed or failed, leaves, so the
 * others never wait for it. Used over and over: the arrivals after an action are the next round's.
 */
class Rendezvous<T> {
  readonly #action: (contributions: T[]) => Promise<void>;
  #expected = 0;
  #arrived: { contribution: T; resolve: () => void; reject: (error: unknown) => void }[] = [];

  constructor(action: (contributions: T[]) => Promise<void>) {
    this.#action = action;
  }

  set expected(count: number) {
    this.#expected = count;
  }

  arrive(contribution: T): Promise<void> {
    return new Promise((resolve, reject) => {
      this.#arrived.push({ contribution, resolve, reject });
      this.#runWhenAllThere();
    });
  }

  leave(): void {
    this.#expected -= 1;
    this.#runWhenAllThere();
  }

  #runWhenAllThere(): void {
    if (this.#arrived.length === 0 || this.#arrived.length < this.#expected) return;
    const batch = this.#arrived;
    this.#arrived = [];
    this.#action(batch.map((arrival) => arrival.contribution)).then(
      () => {
        for (const arrival of batch) arrival.resolve();
      },
      (error: unknown) => {
        for (const arrival of batch) arrival.reject(error);
      },
    );
  }
}

/** The node's outages as the cases of one block share them (see {@link useSharedOutages}). */
export interface SharedOutages<T> {
  /**
   * Waits for every running case to be ready, then takes the node out once for all of them
   * (`takeOut`, given what each case brought) and resolves once it is out.
   */
  out(contribution: T): Promise<void>;
  /** Waits for every running case to be done with the outage, then brings the node back once. */
  back(): Promise<void>;
  /** The case is done (call it from `onTestFinished`): the others stop waiting for it. */
  leave(): void;
}

/**
 * Lets the cases of a `describe.concurrent` block share a private node's outages: each case
 * prepares its own client, the node is stopped (or frozen) once for all of them, each checks
 * what it checks while the node is out, the node comes back once, and each checks what it checks
 * after. A node start costs about 5 s of CPU, most of such a case's time; one outage for the
 * block's cases instead of one each keeps every case's meaning (its own queue, provider and
 * worker see the same kind of outage at the same point) and divides that time. Counts the cases
 * that will run in `beforeAll` (skipped and `-t`-filtered ones do not take part); mind
 * vitest's `maxConcurrency` (5): a block with more cases would wait for ever.
 */
export function useSharedOutages<T = void>(actions: {
  takeOut: (contributions: T[]) => Promise<void>;
  bringBack: () => Promise<void>;
}): SharedOutages<T> {
  const out = new Rendezvous<T>(actions.takeOut);
  const back = new Rendezvous<void>(() => actions.bringBack());
  // vitest 4 hands the suite over as beforeAll's second argument; the first is for fixtures and
  // must be a destructuring pattern.
  // biome-ignore lint/correctness/noEmptyPattern: vitest parses the pattern to find the fixtures used.
  beforeAll(({}, suite) => {
    const cases = runningCases(suite as unknown as TaskTree);
    if (cases > 5) throw new Error(`${cases} cases share the outages, over vitest's maxConcurrency (5)`);
    out.expected = cases;
    back.expected = cases;
  });
  return {
    out: (contribution) => out.arrive(contribution),
    back: () => back.arrive(undefined),
    leave: () => {
      out.leave();
      back.leave();
    },
  };
}
