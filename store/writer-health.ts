/**
 * Health of a background writer (the position write-behind, the dispatch journal): healthy until a store call
 * fails, unhealthy until one succeeds, and a back-off that doubles with each consecutive failure.
 *
 *   store call fails ─► failed(cause) ─► unhealthy (listener told once) ─► returns the wait before the next try:
 *                                          min(backoffMaxMs, backoffMinMs × 2^min(maxDoublings, n − 1)), n-th failure
 *   store call works ─► succeeded()   ─► healthy (listener told once), failure count back to 0
 *   nothing to retry ─► probe(ping)   ─► [wait the back-off ─► ping()] until ping() answers true ─► healthy
 *
 * The listener is where /ready learns of it: it answers 503 while a writer is unhealthy.
 */

/** Back-off schedule and listener of a {@link WriterHealth}. */
export interface WriterHealthOptions {
  /** Wait after the first consecutive failure, in ms. */
  backoffMinMs: number;
  /** The wait never grows past this, in ms. */
  backoffMaxMs: number;
  /** The wait stops doubling after this many doublings even below the cap (default 30: no limit in practice). */
  maxDoublings?: number;
  /** Called once per change of health, with the failure that made it unhealthy. */
  onHealthChange?: (healthy: boolean, cause?: unknown) => void;
}

// 2^30 × any sensible backoffMinMs is far past any cap; the limit only keeps 0 × 2^n from becoming NaN.
const DEFAULT_MAX_DOUBLINGS = 30;

/** Healthy flag, consecutive-failure count, back-off schedule and probe loop of one background writer. */
export class WriterHealth {
  readonly #minMs: number;
  readonly #maxMs: number;
  readonly #maxDoublings: number;
  readonly #onHealthChange: ((healthy: boolean, cause?: unknown) => void) | undefined;
  #healthy = true;
  #failures = 0;
  #probing = false;

  constructor(options: WriterHealthOptions) {
    this.#minMs = options.backoffMinMs;
    this.#maxMs = options.backoffMaxMs;
    this.#maxDoublings = options.maxDoublings ?? DEFAULT_MAX_DOUBLINGS;
    this.#onHealthChange = options.onHealthChange;
  }

  /** True until a store call fails, then false until one succeeds. */
  isHealthy(): boolean {
    return this.#healthy;
  }

  /** Failures since the last success (0 while healthy). */
  get consecutiveFailures(): number {
    return this.#failures;
  }

  /** The wait before the next try after the failures so far, in ms. */
  backoffMs(): number {
    return Math.min(this.#maxMs, this.#minMs * 2 ** Math.min(this.#maxDoublings, Math.max(0, this.#failures - 1)));
  }

  /** A store call succeeded: healthy again, failures forgotten. */
  succeeded(): void {
    this.#failures = 0;
    this.#set(true);
  }

  /** A store call failed: counts it, turns unhealthy and returns the wait (ms) before the next try. */
  failed(cause: unknown): number {
    this.#failures++;
    const wait = this.backoffMs();
    this.#set(false, cause);
    return wait;
  }

  /** Turns unhealthy without counting a failure (a probe counts its own); call probe() to come back. */
  markUnhealthy(cause: unknown): void {
    this.#set(false, cause);
  }

  /**
   * Until healthy: counts a failure, waits the back-off, asks `ping`; true → healthy. One probe at a time;
   * the timers do not keep the process alive. The failure count is 0 when it ends.
   */
  probe(ping: () => Promise<boolean>): void {
    if (this.#probing) return;
    this.#probing = true;
    void (async () => {
      try {
        while (!this.#healthy) {
          this.#failures++;
          await sleep(this.backoffMs());
          if (await ping().catch(() => false)) this.#set(true);
        }
      } finally {
        this.#probing = false;
        this.#failures = 0;
      }
    })();
  }

  #set(healthy: boolean, cause?: unknown): void {
    if (healthy === this.#healthy) return;
    this.#healthy = healthy;
    this.#onHealthChange?.(healthy, cause);
  }
}

function sleep(ms: number): Promise<void> {
  return new Promise((r) => setTimeout(r, ms).unref());
}
