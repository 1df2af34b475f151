/**
 * Best-first nearest-neighbour walk over an rbush tree whose boxes are lng/lat rectangles.
 *
 *   root ──► queue keyed by chord² lower bound (angleToBox) ──► pop nearest entry
 *     ├─ inner node: push children
 *     ├─ leaf node, point items: hand each item to visit() at once (a point's exact score is cheaper than a bound)
 *     ├─ leaf node, box items (boxItems=true): queue each item by its own bound, so near boxes are visited first
 *     └─ queued item: visit() scores what it holds exactly and keeps its own top-k
 *   stop when the nearest queued bound is already beyond what the caller still wants (limit()).
 *
 * Distances are exact on the sphere (see geodesy.ts), so results are right across the antimeridian and
 * near the poles as long as item boxes are split at ±180 (callers insert two boxes for a crossing item).
 */
import type RBush from 'rbush';
import { angleToBox, angleToChord2 } from './geodesy.js';

interface RNode {
  children: RNode[];
  leaf: boolean;
  minX: number;
  minY: number;
  maxX: number;
  maxY: number;
}

/** A reusable walker: one per index, so queries do not allocate queues. */
export class RTreeNearest<T> {
  private nodes: RNode[] = [];
  private keys = new Float64Array(256);
  private isItem = new Uint8Array(256);
  private size = 0;

  /**
   * Visits leaf items of `tree` in rough nearest-first order (by their node's bound) until limit() says
   * nothing nearer can remain. `visit(item)` must do the exact scoring.
   */
  walk(tree: RBush<T>, lat: number, lng: number, limit: () => number, visit: (item: T) => void, boxItems = false): void {
    const root = (tree as unknown as { data: RNode }).data;
    if (root.children.length === 0) return;
    this.size = 0;
    this.push(root, angleToChord2(angleToBox(lat, lng, root.minX, root.minY, root.maxX, root.maxY)), 0);
    while (this.size > 0) {
      if (this.keys[0] > widen(limit())) break;
      const item = this.isItem[0] === 1;
      const node = this.pop();
      if (item) {
        visit(node as unknown as T);
        continue;
      }
      const children = node.children;
      if (node.leaf && !boxItems) {
        for (let i = 0; i < children.length; i++) visit(children[i] as unknown as T);
        continue;
      }
      const flag = node.leaf ? 1 : 0;
      for (let i = 0; i < children.length; i++) {
        const c = children[i];
        const d = angleToChord2(angleToBox(lat, lng, c.minX, c.minY, c.maxX, c.maxY));
        if (d <= widen(limit())) this.push(c, d, flag);
      }
    }
    this.nodes.length = 0;
  }

  private push(node: RNode, key: number, flag: number): void {
    if (this.size === this.keys.length) {
      const keys = new Float64Array(this.keys.length * 2);
      keys.set(this.keys);
      this.keys = keys;
      const flags = new Uint8Array(keys.length);
      flags.set(this.isItem);
      this.isItem = flags;
    }
    let i = this.size++;
    while (i > 0) {
      const p = (i - 1) >> 1;
      if (this.keys[p] <= key) break;
      this.keys[i] = this.keys[p];
      this.nodes[i] = this.nodes[p];
      this.isItem[i] = this.isItem[p];
      i = p;
    }
    this.keys[i] = key;
    this.nodes[i] = node;
    this.isItem[i] = flag;
  }

  private pop(): RNode {
    const top = this.nodes[0];
    const last = --this.size;
    if (last > 0) {
      const key = this.keys[last];
      const node = this.nodes[last];
      const flag = this.isItem[last];
      let i = 0;
      const half = last >> 1;
      while (i < half) {
        let c = 2 * i + 1;
        if (c + 1 < last && this.keys[c + 1] < this.keys[c]) c++;
        if (this.keys[c] >= key) break;
        this.keys[i] = this.keys[c];
        this.nodes[i] = this.nodes[c];
        this.isItem[i] = this.isItem[c];
        i = c;
      }
      this.keys[i] = key;
      this.nodes[i] = node;
      this.isItem[i] = flag;
    }
    return top;
  }
}

/**
 * Box bounds come from haversine, item scores from chords; the two round differently in the last bits, so
 * a point exactly at the limit (a tie for k-th place, or on the radius) could be pruned by a bound a hair
 * above its own score. Widening by a relative 1e-9 (nanometres on the ground) keeps it; exact scoring decides.
 */
export function widen(limit: number): number {
  return limit * (1 + 1e-9) + 1e-24;
}
