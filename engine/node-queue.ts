/**
 * A min-priority queue of integer nodes keyed by float bounds, in typed arrays reused across queries:
 * the frontier of every best-first nearest search in the engine.
 */
export class NodeQueue {
  private keys = new Float64Array(256);
  private nodes = new Int32Array(256);
  /** Entries queued. */
  size = 0;

  /** Empties the queue, keeping its buffers. */
  clear(): void {
    this.size = 0;
  }

  /** Smallest key queued (undefined behaviour when empty). */
  peekKey(): number {
    return this.keys[0];
  }

  /** Queues a node under a key. */
  push(node: number, key: number): void {
    if (this.size === this.keys.length) this.grow();
    const keys = this.keys;
    const nodes = this.nodes;
    let i = this.size++;
    while (i > 0) {
      const up = (i - 1) >> 1;
      if (keys[up] <= key) break;
      keys[i] = keys[up];
      nodes[i] = nodes[up];
      i = up;
    }
    keys[i] = key;
    nodes[i] = node;
  }

  /** Removes and returns the node with the smallest key. */
  pop(): number {
    const keys = this.keys;
    const nodes = this.nodes;
    const top = nodes[0];
    const last = --this.size;
    if (last > 0) {
      const key = keys[last];
      const node = nodes[last];
      let i = 0;
      const half = last >> 1;
      while (i < half) {
        let c = 2 * i + 1;
        if (c + 1 < last && keys[c + 1] < keys[c]) c++;
        if (keys[c] >= key) break;
        keys[i] = keys[c];
        nodes[i] = nodes[c];
        i = c;
      }
      keys[i] = key;
      nodes[i] = node;
    }
    return top;
  }

  private grow(): void {
    const keys = new Float64Array(this.keys.length * 2);
    keys.set(this.keys);
    const nodes = new Int32Array(keys.length);
    nodes.set(this.nodes);
    this.keys = keys;
    this.nodes = nodes;
  }
}
