/**
 * A bounded max-heap of the k best (smallest chord²) hits of a query. Typed arrays, reused between
 * queries, so a nearest search allocates only its result.
 */
export class TopK {
  private keys: Float64Array;
  private vals: Int32Array;
  private k = 0;
  /** Number of hits held. */
  size = 0;

  constructor(initialCapacity = 64) {
    this.keys = new Float64Array(initialCapacity);
    this.vals = new Int32Array(initialCapacity);
  }

  /** Empties the heap and sets how many hits it keeps. */
  reset(k: number): void {
    if (k > this.keys.length) {
      this.keys = new Float64Array(k);
      this.vals = new Int32Array(k);
    }
    this.k = k;
    this.size = 0;
  }

  /** The key a new hit must beat: the worst kept key once full, else Infinity. */
  bound(): number {
    if (this.k === 0) return -Infinity;
    return this.size < this.k ? Infinity : this.keys[0];
  }

  /** Offers a hit; ties with the current worst are broken by the smaller value. */
  push(key: number, val: number): void {
    const keys = this.keys;
    const vals = this.vals;
    if (this.size < this.k) {
      let i = this.size++;
      while (i > 0) {
        const p = (i - 1) >> 1;
        if (!worse(key, val, keys[p], vals[p])) break;
        keys[i] = keys[p];
        vals[i] = vals[p];
        i = p;
      }
      keys[i] = key;
      vals[i] = val;
      return;
    }
    if (this.k === 0 || !worse(keys[0], vals[0], key, val)) return;
    siftDown(keys, vals, this.size, key, val);
  }

  /** Drains the heap into (vals, keys) ordered best first; returns the count. */
  drainSorted(outVals: Int32Array | number[], outKeys: Float64Array | number[]): number {
    const n = this.size;
    for (let i = n - 1; i >= 0; i--) {
      outVals[i] = this.vals[0];
      outKeys[i] = this.keys[0];
      const lastKey = this.keys[this.size - 1];
      const lastVal = this.vals[this.size - 1];
      this.size--;
      if (this.size > 0) siftDown(this.keys, this.vals, this.size, lastKey, lastVal);
    }
    return n;
  }
}

// (ka, va) ranks after (kb, vb): larger distance, or equal distance and larger value
function worse(ka: number, va: number, kb: number, vb: number): boolean {
  return ka > kb || (ka === kb && va > vb);
}

function siftDown(keys: Float64Array, vals: Int32Array, size: number, key: number, val: number): void {
  let i = 0;
  const half = size >> 1;
  while (i < half) {
    let c = 2 * i + 1;
    const r = c + 1;
    if (r < size && worse(keys[r], vals[r], keys[c], vals[c])) c = r;
    if (!worse(keys[c], vals[c], key, val)) break;
    keys[i] = keys[c];
    vals[i] = vals[c];
    i = c;
  }
  keys[i] = key;
  vals[i] = val;
}
