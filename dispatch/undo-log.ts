/**
 * How a state change that the store refused is taken back out of memory.
 *
 *   verb (submit, accept, cancel, tick …) ─► lifecycle / loop mutate ─► record(step) for each mutation
 *   publish ─► take() ─► Rollback (the steps since the last take)  ─► journal commits the transition
 *                             │ commit refused
 *                             ▼
 *                         rollback(): steps run newest first, so memory is as it was before the verb
 *
 * Steps restore values captured when the mutation happened; counters that only number things (event seq,
 * offer ids) are never taken back, so a number once handed out is never reused.
 */

/** Puts memory back as it was before the mutations it covers; running it twice does nothing more. */
export type Rollback = () => void;

/** Steps that undo the mutations made since the last `take()`. */
export class UndoLog {
  private steps: (() => void)[] = [];

  /** Remembers how to undo one mutation that just happened. */
  record(step: () => void): void {
    this.steps.push(step);
  }

  /** Mutations recorded since the last take. */
  get size(): number {
    return this.steps.length;
  }

  /** Hands over the steps recorded so far as one rollback and starts afresh. */
  take(): Rollback {
    const steps = this.steps;
    this.steps = [];
    let done = steps.length === 0;
    return () => {
      if (done) return;
      done = true;
      for (let i = steps.length - 1; i >= 0; i--) steps[i]();
    };
  }

  /** Forgets the steps recorded so far (their changes are kept for good). */
  clear(): void {
    this.steps = [];
  }
}
