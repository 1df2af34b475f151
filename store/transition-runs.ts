/**
 * A group of transitions as gd_commit_transitions takes it: runs of consecutive transitions that touch no common
 * request, offer, courier, blood lot or Idempotency-Key. Each step of a run is one statement over the rows of all
 * its transitions, so a journal group of ~35 transitions costs a few dozen statements instead of ~200 (each
 * statement is a parse of its JSON rows and an executor start; in the embedded store that was most of a commit).
 *
 *   t1 (create r1)  t2 (create r2)  t3 (offer r1 → c4)  t4 (accept o9 of r5, c2)  t5 (c2 delivered r5)
 *   └──────── run 1 ─────────────┘  └─────────── run 2 ──────────────────────┘  └──── run 3 ────┘
 *                                   (t3 names r1, which run 1 holds)              (t5 names c2 and r5)
 *
 * Why merging keeps each transition's meaning: within a run no two transitions name the same row, so the order
 * between them cannot matter, and each transition's own steps still run in TRANSITION_STEPS order. Rows that the
 * statements stamp with the transition's time carry it (`txAt`), since a run holds several times.
 *
 * A run is applied whole or not at all (its seqs go into applied_transitions together). A run of which some
 * seqs are stored and some not (a group retried after a lost answer, regrouped with new transitions) makes the
 * function raise PARTLY_APPLIED; the caller then sends the group again one transition per run, where a stored
 * seq is skipped on its own.
 */
import { PARTLY_APPLIED, TRANSITION_STEPS } from './sql.js';
import type { Transition } from './store.js';

/** The steps whose statements stamp rows with the transition's time, which their rows then carry as `txAt`. */
const STAMPED = new Set<string>(TRANSITION_STEPS.filter(([, sql]) => sql.includes('"txAt"')).map(([field]) => field));

type StepField = (typeof TRANSITION_STEPS)[number][0];
/** Each Transition field holding rows, once (two steps read `idempotency`). */
const FIELDS = [...new Set(TRANSITION_STEPS.map(([field]) => field))];
type Row = Record<string, unknown>;

/** One run as the function reads it: the seqs it applies (with their times) and each step's rows. */
export interface TransitionRun {
  applied: { seq: number; at: number }[];
  [field: string]: Row[] | { seq: number; at: number }[];
}

/**
 * The runs of a group, in order. `alone`: one transition per run (the replay of a partly stored group).
 * The concatenation of the runs' rows per step is the transitions' rows in order.
 */
export function transitionRuns(ts: readonly Transition[], alone = false): TransitionRun[] {
  const runs: TransitionRun[] = [];
  let run: TransitionRun | undefined;
  let held = new Set<string>();
  for (const t of ts) {
    const keys = alone ? [] : keysOf(t);
    if (run === undefined || alone || keys.some((k) => held.has(k))) {
      run = { applied: [] };
      runs.push(run);
      held = new Set();
    }
    for (const k of keys) held.add(k);
    run.applied.push({ seq: t.seq, at: t.at });
    for (const field of FIELDS) {
      const rows = t[field] as Row[] | undefined;
      if (rows === undefined || rows.length === 0) continue;
      const into = (run[field] ??= []) as Row[];
      if (STAMPED.has(field)) for (const r of rows) into.push({ ...r, txAt: t.at });
      else for (const r of rows) into.push(r);
    }
  }
  return runs;
}

/** True for the error gd_commit_transitions raises for a partly stored run (either driver's error shape). */
export function isPartlyApplied(err: unknown): boolean {
  return typeof err === 'object' && err !== null && (err as { code?: unknown }).code === PARTLY_APPLIED;
}

/** Every row a transition names, as `kind:id` (requests r, offers o, couriers c, lots l, idempotency keys k). */
export function keysOf(t: Transition): string[] {
  const out: string[] = [];
  const add = (kind: string, id: unknown): void => {
    if (typeof id === 'string') out.push(kind + id);
  };
  for (const r of t.requests ?? []) {
    add('r:', r.id);
    add('r:', r.parentId);
  }
  for (const k of t.idempotency ?? []) {
    add('k:', `${k.principal}\u0000${k.key}`);
    add('r:', k.requestId);
  }
  for (const s of t.requestStatus ?? []) add('r:', s.id);
  for (const o of t.offers ?? []) {
    add('o:', o.id);
    add('r:', o.requestId);
    add('c:', o.courierId);
  }
  for (const s of t.offerStatus ?? []) add('o:', s.id);
  for (const a of t.assignmentsEnded ?? []) add('r:', a.requestId);
  for (const a of t.assignmentsStarted ?? []) {
    add('r:', a.requestId);
    add('c:', a.courierId);
    add('o:', a.offerId);
  }
  for (const field of ['reservationsMade', 'reservationsReleased', 'reservationsIssued'] as const satisfies readonly StepField[]) {
    for (const r of t[field] ?? []) {
      add('r:', r.requestId);
      add('l:', `${r.siteId}\u0000${r.product}\u0000${r.bloodType}\u0000${r.expiresAt}`);
    }
  }
  for (const s of t.courierStatus ?? []) add('c:', s.id);
  for (const e of t.events ?? []) {
    add('r:', e.requestId);
    add('c:', e.courierId);
  }
  return out;
}
