/**
 * Frame time as the user feels it: the gap between consecutive requestAnimationFrame callbacks (which
 * includes MapLibre's own render and our courier upload, both run inside rAF).
 */

/** Frames kept: 10 s at 60 fps, the window the panel and the tests report over. */
const WINDOW = 600;

/** Measures requestAnimationFrame deltas. */
export class FrameMeter {
  private readonly deltas = new Float64Array(WINDOW);
  private n = 0;
  private last = 0;
  private running = false;

  /** Starts measuring (idempotent). */
  start(): void {
    if (this.running) return;
    this.running = true;
    const tick = (t: number): void => {
      if (!this.running) return;
      if (this.last > 0) this.deltas[this.n++ % WINDOW] = t - this.last;
      this.last = t;
      requestAnimationFrame(tick);
    };
    requestAnimationFrame(tick);
  }

  /** Forgets the frames so far (start of a measurement window). */
  reset(): void {
    this.n = 0;
  }

  /** p50 / p95 / max frame time in ms over the window, and frames counted. */
  stats(): { p50: number; p95: number; max: number; frames: number } {
    const count = Math.min(this.n, WINDOW);
    if (count === 0) return { p50: NaN, p95: NaN, max: NaN, frames: 0 };
    const s = Array.from(this.deltas.subarray(0, count)).sort((a, b) => a - b);
    const at = (q: number): number => s[Math.min(count - 1, Math.ceil(q * count) - 1)];
    return { p50: at(0.5), p95: at(0.95), max: s[count - 1], frames: this.n };
  }
}
