/**
 * Piscina task: plans one batch off the main thread.
 *
 *   { snapshot: SharedArrayBuffer (shared), requests: Packed (moved), policy (cloned, small), now }
 *     ──► CourierSnapshot.from(snapshot) — views over the shared memory, nothing copied
 *     ──► planBatch ──► packPlan ──moved back──► DispatchPool.unpackPlan
 *
 * The plan goes back packed like the requests: ~2,000 assignments as objects would make structured clone
 * walk ~2,000 objects and ~4,000 strings on the main thread, the one thread that must stay free.
 */
import { move, transferableSymbol, valueSymbol } from 'piscina';
import { planBatch } from '../dispatch/assign-batch.js';
import type { DispatchPolicy } from '../dispatch/dispatch-request.js';
import { CourierSnapshot } from '../engine/courier-snapshot.js';
import { type Packed, packPlan, unpackRequests } from './request-packing.js';

/** What DispatchPool sends for one batch. */
export interface MatchBatchTask {
  snapshot: SharedArrayBuffer;
  requests: Packed;
  policy: DispatchPolicy;
  now: number;
}

/** Plans the batch with planBatch and returns the packed plan, its buffer moved to the caller. */
export default function matchBatch(task: MatchBatchTask): Packed {
  const plan = planBatch(CourierSnapshot.from(task.snapshot), unpackRequests(task.requests), task.policy, task.now);
  const packed = packPlan(plan);
  // piscina unwraps [valueSymbol] for the caller and transfers [transferableSymbol]
  return move({ [transferableSymbol]: packed.numbers.buffer, [valueSymbol]: packed }) as unknown as Packed;
}
