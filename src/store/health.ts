import type { Clock } from '../core/clock.ts';
import { FlashcardsError } from '../core/errors.ts';

/**
 * Whether the shared store answers, as a run sees it. On state.db it always does (a failing disk
 * is an error, not an absence). On Redis a timeout or a dropped connection marks the store away:
 * the job gates wait for it before anything is paid for, answers already paid for go to the
 * outbox, and the runner stops claiming; a probe brings it back, or finds it lost its state.
 */
export interface StoreHealth {
  /** The store stopped answering and has not answered since. */
  readonly away: boolean;
  /** When it stopped answering (ms); undefined while it answers. */
  readonly awaySince: number | undefined;
  /** The store answers but lost its state: every later call fails with this. */
  readonly lost: FlashcardsError | undefined;
  /** Where the store is, as messages name it (password hidden). */
  readonly where: string;
  /** Resolves once the store answers again or is found lost; never rejects. */
  back(): Promise<void>;
  /** Told each time the store goes away, comes back, or is found lost. */
  onChange(listener: (change: 'away' | 'back' | 'lost') => void): void;
}

/** The health of state.db: always there. */
export const alwaysThere: StoreHealth = {
  away: false,
  awaySince: undefined,
  lost: undefined,
  where: 'state.db',
  back: () => Promise.resolve(),
  onChange: () => {},
};

/** Thrown by the store's calls while it is away; a run waits on it up to --max-wait. */
export function storeUnavailable(where: string, reason: string, cause?: unknown): FlashcardsError {
  return new FlashcardsError('store_unavailable', `the store at ${where} does not answer (${reason})`, {
    hint: 'is the Redis server up and reachable from here? `flashcards doctor` checks it',
    cause,
  });
}

/** True for the error the store's calls throw while it is away. */
export function isStoreUnavailable(e: unknown): e is FlashcardsError {
  return e instanceof FlashcardsError && e.kind === 'store_unavailable';
}

export interface ProbedHealthOptions {
  where: string;
  clock: Clock;
  /**
   * Asks the store once: resolves when it answers with its state intact, rejects with a
   * `store_lost` error when it answers without it, rejects otherwise while it is away.
   */
  probe: () => Promise<void>;
  /** How often an away store is asked again. */
  probeEveryMs?: number;
}

/**
 * The health of a store reached over the network: marked away by a call that timed out or found
 * the connection gone, and brought back by a probe run every `probeEveryMs` while away.
 */
export class ProbedHealth implements StoreHealth {
  readonly where: string;
  readonly #clock: Clock;
  readonly #probe: () => Promise<void>;
  readonly #everyMs: number;
  readonly #listeners: ((change: 'away' | 'back' | 'lost') => void)[] = [];
  #awaySince: number | undefined;
  #lost: FlashcardsError | undefined;
  #waiters: (() => void)[] = [];
  #stopProbing: (() => void) | undefined;

  constructor(o: ProbedHealthOptions) {
    this.where = o.where;
    this.#clock = o.clock;
    this.#probe = o.probe;
    this.#everyMs = o.probeEveryMs ?? 500;
  }

  get away(): boolean {
    return this.#awaySince !== undefined;
  }

  get awaySince(): number | undefined {
    return this.#awaySince;
  }

  get lost(): FlashcardsError | undefined {
    return this.#lost;
  }

  back(): Promise<void> {
    if (!this.away || this.#lost) return Promise.resolve();
    return new Promise((resolve) => this.#waiters.push(resolve));
  }

  onChange(listener: (change: 'away' | 'back' | 'lost') => void): void {
    this.#listeners.push(listener);
  }

  /** A call found the store away: start probing until it answers. */
  markAway(): void {
    if (this.away || this.#lost) return;
    this.#awaySince = this.#clock.now();
    this.#tell('away');
    let probing = false;
    this.#stopProbing = this.#clock.timer(
      this.#everyMs,
      () => {
        if (probing) return;
        probing = true;
        this.#probe().then(
          () => this.#settle(undefined),
          (e: unknown) => {
            probing = false;
            if (e instanceof FlashcardsError && e.kind === 'store_lost') this.#settle(e);
          },
        );
      },
      { repeat: true },
    );
  }

  /** The store answered without its state (found by a probe, or by the check after a reconnect). */
  markLost(error: FlashcardsError): void {
    if (this.#lost) return;
    this.#settle(error);
  }

  /** Stops probing (the run is over). */
  close(): void {
    this.#stopProbing?.();
    this.#stopProbing = undefined;
  }

  #settle(lost: FlashcardsError | undefined): void {
    this.close();
    this.#awaySince = undefined;
    if (lost) this.#lost = lost;
    const waiters = this.#waiters;
    this.#waiters = [];
    for (const resolve of waiters) resolve();
    this.#tell(lost ? 'lost' : 'back');
  }

  #tell(change: 'away' | 'back' | 'lost'): void {
    for (const listener of this.#listeners) listener(change);
  }
}
