/**
 * Which Idempotency-Keys may be stored: a Bloom filter in two generations, so a create under a new key (almost
 * every keyed create) is answered "not stored" without a store read.
 *
 *   add(slot)      ─► set K bits in the current generation
 *   mayHave(slot)  ─► any generation has all K bits?  no: surely never added  ·  yes: maybe (read the store)
 *   every `spanMs` ─► the previous generation is dropped, the current one becomes the previous
 *
 * A slot added at t stays in one of the two generations for at least `spanMs` (the key TTL), so a key is only
 * forgotten once the store would not answer it either. A filter gives false "maybe"s (then the store is read,
 * as without it), never a false "no" for a slot it was given.
 */

/** Bits per generation: 2^23 (1 MiB), ~1 % false "maybe" at 880,000 keys per generation with 4 probes. */
const BITS_LOG2 = 23;
const PROBES = 4;

export class KeyFilter {
  private current = new Uint32Array(1 << (BITS_LOG2 - 5));
  private previous = new Uint32Array(1 << (BITS_LOG2 - 5));
  private rotatesAt: number;

  constructor(
    private readonly spanMs: number,
    private readonly clock: () => number,
  ) {
    if (!(spanMs > 0)) throw new Error(`KeyFilter: spanMs must be positive, got ${spanMs}`);
    this.rotatesAt = clock() + spanMs;
  }

  add(slot: string): void {
    this.rotate();
    const [h1, h2] = hashes(slot);
    for (let i = 0; i < PROBES; i++) set(this.current, (h1 + i * h2) >>> 0);
  }

  /** False only for a slot not added within the last span (at least). */
  mayHave(slot: string): boolean {
    this.rotate();
    const [h1, h2] = hashes(slot);
    return holds(this.current, h1, h2) || holds(this.previous, h1, h2);
  }

  private rotate(): void {
    const now = this.clock();
    if (now < this.rotatesAt) return;
    // a whole span with nothing asked: both generations are older than the span
    this.previous = now >= this.rotatesAt + this.spanMs ? new Uint32Array(this.current.length) : this.current;
    this.current = new Uint32Array(this.current.length);
    this.rotatesAt = now + this.spanMs;
  }
}

const MASK = (1 << BITS_LOG2) - 1;

function set(bits: Uint32Array, h: number): void {
  const b = h & MASK;
  bits[b >>> 5] |= 1 << (b & 31);
}

function holds(bits: Uint32Array, h1: number, h2: number): boolean {
  for (let i = 0; i < PROBES; i++) {
    const b = ((h1 + i * h2) >>> 0) & MASK;
    if ((bits[b >>> 5] & (1 << (b & 31))) === 0) return false;
  }
  return true;
}

// two 32-bit FNV-1a variants over the UTF-16 code units (double hashing: probe i is h1 + i·h2)
function hashes(s: string): [number, number] {
  let a = 0x811c9dc5;
  let b = 0x01000193 ^ s.length;
  for (let i = 0; i < s.length; i++) {
    const c = s.charCodeAt(i);
    a = Math.imul(a ^ c, 0x01000193);
    b = Math.imul(b ^ c, 0x5bd1e995);
    b ^= b >>> 15;
  }
  // an odd step visits distinct bits across the probes
  return [a >>> 0, (b | 1) >>> 0];
}
