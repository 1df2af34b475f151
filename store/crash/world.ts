/**
 * The crash property's world: a small city the harness builds through the admin API, and the server's
 * environment for it. Every constant here shapes what a run exercises; none is read anywhere else.
 */

import { DEFAULT_POLICY } from '../../dispatch/dispatch-request.js';
import { maxCarried } from '../../dispatch/en-route.js';

/** The most legs one courier may carry at once under the server's default policy: a stack and one leg taken en route. */
export const MAX_CARRIED = maxCarried(DEFAULT_POLICY);

/** Signs every token the harness sends; the server verifies with the same secret (JWT_SECRET). */
export const SECRET = 'crash-property-secret-0123456789-abcdefghijklmnop';
/** Pings are written behind at this period; one acknowledged 2× this before a kill must survive it (PRODUCT §4). */
export const FLUSH_MS = 200;
/**
 * A ping acknowledged this long before a SIGKILL must have survived it: the next flush plus the time its write
 * takes. The write is what varies — on a 2-core machine running other test files (or a soak beside the suite)
 * a PGlite write of a batch has taken over 300 ms — so the bound is generous; a clean stop checks every ping.
 */
export const DURABLE_AFTER_MS = 1_500;
/** Short enough that ignored offers expire inside a cycle's load now and then. */
export const OFFER_TTL_MS = 2500;
/** A small world: every point within ~2 km, so every courier is in reach of every pickup. */
export const CENTER = { lat: 51.5, lng: -0.12 };
/** Half the side of the world's square, in degrees (~1.7 km north–south). */
export const SPREAD = 0.015;
/** Reads ask this far around the centre: the whole world and then some. */
export const RADIUS_M = 50_000;
/** Every courier id the run may write (the first FIRST_COURIERS exist from the start). */
export const COURIERS = Array.from({ length: 12 }, (_, i) => `c${i}`);
/** Couriers built with the world; the rest appear through later profile writes. */
export const FIRST_COURIERS = 8;
/** Blood banks: the only sites with stock. */
export const BANKS = ['bank-0', 'bank-1'];
/** Hospitals: where blood goes. */
export const HOSPITALS = ['hosp-0', 'hosp-1'];
/** Restaurants: pickup sites of deliveries (the first two exist from the start). */
export const RESTAURANTS = ['rest-0', 'rest-1', 'rest-2', 'rest-3'];
/** Every site the run may write, and whether it is built with the world. */
export const SITES: readonly { id: string; kind: string; setup: boolean }[] = [
  ...BANKS.map((id) => ({ id, kind: 'blood_bank', setup: true })),
  ...HOSPITALS.map((id) => ({ id, kind: 'hospital', setup: true })),
  ...RESTAURANTS.map((id, i) => ({ id, kind: 'restaurant', setup: i < 2 })),
  { id: 'fb-0', kind: 'food_bank', setup: true },
  { id: 'sh-0', kind: 'shelter', setup: true },
];
/** Every donor id the run may write (the first FIRST_DONORS exist from the start). */
export const DONORS = Array.from({ length: 8 }, (_, i) => `d${i}`);
/** Donors built with the world. */
export const FIRST_DONORS = 5;
/** Every fence id the run may write (the first FIRST_FENCES exist from the start). */
export const FENCES = ['f0', 'f1', 'f2'];
/** Fences built with the world. */
export const FIRST_FENCES = 2;
/** Requester principals (each with its own token). */
export const REQUESTERS = ['requester-1', 'requester-2', 'requester-3'];
/** Every ABO/Rh type. */
export const BLOOD_TYPES = ['O-', 'O+', 'A-', 'A+', 'B-', 'B+', 'AB-', 'AB+'] as const;
/** One day in ms. */
export const DAY = 86_400_000;
/** Whole blood is stocked but never requested: its units on hand (GET /v1/nearby) must be exactly what was written. */
export const WHOLE_BLOOD_TYPES = ['O+', 'A-'] as const;
/** Stock views whose compatible donor types are exact (PRODUCT §2): AB+ takes every red-cell type, AB plasma only AB. */
export const STOCK_VIEWS: readonly (readonly [string, string, readonly string[]])[] = [
  ['red_cells', 'AB+', BLOOD_TYPES],
  ['plasma', 'AB+', ['AB+', 'AB-']],
];
/** Whole-blood donation interval (PRODUCT §2): a donor who gave more recently is not shown by nearby. */
export const DONOR_INTERVAL_MS = 56 * DAY;

/** The server's environment on top of startServerProcess's clean one (which drops DATABASE_URL, REDIS_URL, JWT_PUBLIC_KEY …). */
export function serverEnv(dataDir: string): Record<string, string> {
  return {
    PORT: '0', HOST: '127.0.0.1', DATA_DIR: dataDir, JWT_SECRET: SECRET, SEED_CITY: 'none', LOG_LEVEL: 'warn',
    DISPATCH_MODE: 'greedy', DISPATCH_TICK_MS: '20', OFFER_TTL_MS: String(OFFER_TTL_MS), POSITION_FLUSH_MS: String(FLUSH_MS), DRAIN_GRACE_MS: '0',
    // far above what the harness sends: it tests crashes, not rate limits
    RATE_PER_SEC: '100000', RATE_BURST: '200000', INGEST_PER_SEC: '100000', INGEST_BURST: '200000',
  };
}
