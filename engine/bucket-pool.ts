/**
 * One slab of typed arrays holding every bucket's couriers: unit vector, slot and attr word per entry.
 *
 * A per-bucket Float64Array costs ~240 bytes of V8 object before it holds anything, which at two or
 * three couriers per suburban cell would dwarf the couriers themselves. Buckets instead own chunks of
 * this slab, sized in powers of two with a free list per size class, so a bucket costs a few numbers.
 */

/** Chunks of power-of-two sizes in shared typed arrays. */
export class BucketPool {
  xyz: Float64Array;
  slots: Int32Array;
  attrs: Uint32Array;
  private top = 0;
  private freeLists: number[][] = [];

  constructor(initialEntries = 1024) {
    const cap = Math.max(16, initialEntries);
    this.xyz = new Float64Array(cap * 3);
    this.slots = new Int32Array(cap);
    this.attrs = new Uint32Array(cap);
  }

  /** Size class (log2 of capacity) that fits n entries. */
  static classFor(n: number): number {
    return n <= 1 ? 0 : 32 - Math.clz32(n - 1);
  }

  /** Offset of a fresh chunk of 2^sizeClass entries. */
  allocate(sizeClass: number): number {
    const free = this.freeLists[sizeClass];
    if (free !== undefined && free.length > 0) return free.pop() as number;
    const size = 1 << sizeClass;
    if (this.top + size > this.slots.length) this.grow(this.top + size);
    const at = this.top;
    this.top += size;
    return at;
  }

  /** Returns a chunk to its size class. */
  release(offset: number, sizeClass: number): void {
    (this.freeLists[sizeClass] ??= []).push(offset);
  }

  /** Copies `count` entries from one offset to another. */
  copy(from: number, to: number, count: number): void {
    this.xyz.copyWithin(3 * to, 3 * from, 3 * (from + count));
    this.slots.copyWithin(to, from, from + count);
    this.attrs.copyWithin(to, from, from + count);
  }

  /** Bytes held by the slab. */
  byteSize(): number {
    return this.xyz.byteLength + this.slots.byteLength + this.attrs.byteLength;
  }

  private grow(needed: number): void {
    // ×1.5: the slab is the largest allocation of the index, so overshoot costs real memory
    const cap = Math.max(needed, Math.ceil(this.slots.length * 1.5));
    const xyz = new Float64Array(cap * 3);
    xyz.set(this.xyz);
    const slots = new Int32Array(cap);
    slots.set(this.slots);
    const attrs = new Uint32Array(cap);
    attrs.set(this.attrs);
    this.xyz = xyz;
    this.slots = slots;
    this.attrs = attrs;
  }
}
