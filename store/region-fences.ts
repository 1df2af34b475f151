/**
 * Fencing epochs in the database (PRODUCT §7): the half of region ownership that Redis cannot give. A core that
 * takes a region's lease first claims the region's epoch here; from then on a commit fenced with an older epoch
 * is refused, so a core that was paused past its lease (GC, a frozen VM) cannot write over its successor.
 *
 *   core B: lease r (epoch 8) ─► claimRegion(r, 8) ───────────────► commit [r@8] ─► ok
 *   core A (paused, held 7):                         commit [r@7] ─► StaleEpoch (stored 8), rolled back
 *
 * The check runs in the commit's own transaction and reads the epochs FOR SHARE: a claim (an UPDATE of the row)
 * waits for commits in flight under the old epoch, and every commit after the claim sees the new one.
 */
import { StaleEpoch } from './store-errors.js';
import type { SqlSession } from './sql.js';

/** A region and the epoch its writer holds it under. */
export interface RegionFence {
  region: string;
  epoch: number;
}

export const REGION_EPOCHS_MIGRATION = `
CREATE TABLE region_epochs (
  region text PRIMARY KEY,
  epoch bigint NOT NULL CHECK (epoch > 0),
  claimed_at timestamptz NOT NULL DEFAULT now()
);`;

// stores the epoch unless a larger one is there; the same epoch again is the holder re-claiming (idempotent)
const CLAIM_REGION = `
INSERT INTO region_epochs (region, epoch) VALUES ($1, $2)
ON CONFLICT (region) DO UPDATE SET epoch = EXCLUDED.epoch, claimed_at = now() WHERE region_epochs.epoch <= EXCLUDED.epoch
RETURNING epoch::float8 AS epoch`;

/**
 * Event numbers for cluster cores: every region a core takes gets a block of its own (SEQ_BLOCK_SIZE seqs above
 * block × SEQ_BLOCK_SIZE), so two cores committing at once never number two events alike, and a region taken
 * again numbers above everything its previous holder wrote (blocks only grow): a request's events stay in order.
 */
export const SEQ_BLOCKS_MIGRATION = `
CREATE SEQUENCE transition_seq_blocks START 1;
-- a cluster bounds each requester's open requests across every core by counting them here (Store.countOpenRequests)
CREATE INDEX requests_open_by_requester ON requests (requester_id) WHERE (parent_id IS NULL OR parent_id = id) AND status NOT IN ('delivered', 'cancelled', 'failed');
`;

// counts no further than the bound: a create costs at most `upTo` index entries however many the requester has open
const COUNT_OPEN = `
SELECT count(*)::int AS n FROM (
  SELECT 1 FROM requests
  WHERE requester_id = $1 AND (requester_role = $2 OR requester_role IS NULL)
    AND (parent_id IS NULL OR parent_id = id) AND status NOT IN ('delivered', 'cancelled', 'failed')
  LIMIT $3
) open`;

/** A requester's open requests (parents) as stored, counted up to `upTo`: the bound every core of a cluster applies. */
export async function countOpenRequests(db: SqlSession, requesterId: string, requesterRole: string, upTo: number): Promise<number> {
  return (await db.query<{ n: number }>(COUNT_OPEN, [requesterId, requesterRole, upTo]))[0]?.n ?? 0;
}

/** Seqs per block: 2^32 (a region would need four billion events under one lease to run out), 2^21 blocks in a safe integer. */
export const SEQ_BLOCK_SIZE = 2 ** 32;

/** The first seq of a fresh block (its numbers are this + 1 …). */
export async function nextSeqBlock(db: SqlSession): Promise<number> {
  const rows = await db.query<{ block: number }>(`SELECT nextval('transition_seq_blocks')::float8 AS block`);
  const base = rows[0].block * SEQ_BLOCK_SIZE;
  if (!Number.isSafeInteger(base + SEQ_BLOCK_SIZE)) throw new Error('transition seq blocks are used up (2^21 region claims)');
  return base;
}

const REGION_EPOCHS = `SELECT region, epoch::float8 AS epoch FROM region_epochs WHERE region = ANY($1::text[])`;

const FENCE_EPOCHS = `${REGION_EPOCHS} FOR SHARE`;

/** Claims the region for `epoch`: claimed unless a larger epoch holds it; `epoch` is the one stored after. */
export async function claimRegion(db: SqlSession, region: string, epoch: number): Promise<{ claimed: boolean; epoch: number }> {
  checkFence({ region, epoch });
  const rows = await db.query<{ epoch: number }>(CLAIM_REGION, [region, epoch]);
  if (rows.length > 0) return { claimed: true, epoch: rows[0].epoch };
  return { claimed: false, epoch: (await regionEpochs(db, [region])).get(region) ?? 0 };
}

/** The stored epoch of each region that has one. */
export async function regionEpochs(db: SqlSession, regions: readonly string[]): Promise<Map<string, number>> {
  const rows = await db.query<{ region: string; epoch: number }>(REGION_EPOCHS, [regions]);
  return new Map(rows.map((r) => [r.region, r.epoch]));
}

/** Inside a commit's transaction: throws StaleEpoch unless every fence's epoch is the region's stored one. */
export async function checkFences(tx: SqlSession, fences: readonly RegionFence[]): Promise<void> {
  for (const f of fences) checkFence(f);
  const stored = new Map((await tx.query<{ region: string; epoch: number }>(FENCE_EPOCHS, [fences.map((f) => f.region)])).map((r) => [r.region, r.epoch]));
  for (const f of fences) {
    const now = stored.get(f.region) ?? 0;
    if (now !== f.epoch) throw new StaleEpoch(f.region, f.epoch, now);
  }
}

function checkFence(f: RegionFence): void {
  if (typeof f.region !== 'string' || f.region === '') throw new Error(`a region fence needs a region id, got ${String(f.region)}`);
  if (!Number.isSafeInteger(f.epoch) || f.epoch <= 0) throw new Error(`a region fence needs a positive integer epoch, got ${String(f.epoch)}`);
}
