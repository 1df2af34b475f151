/** Stable error codes the engine raises at its boundary; only the API layer maps them to statuses. */
export type EngineErrorCode =
  | 'E_BAD_COORDINATE'
  | 'E_BAD_QUERY'
  | 'E_BAD_TIMESTAMP'
  | 'E_BAD_PROFILE'
  | 'E_UNKNOWN_COURIER'
  | 'E_UNKNOWN_SITE'
  | 'E_UNKNOWN_DONOR'
  | 'E_BAD_GEOMETRY'
  | 'E_BAD_INVENTORY'
  | 'E_BAD_SNAPSHOT';

/** A failure at the engine boundary, carrying a stable code and an optional cause. */
export class EngineError extends Error {
  readonly code: EngineErrorCode;
  constructor(code: EngineErrorCode, message: string, options?: { cause?: unknown }) {
    super(message, options);
    this.name = 'EngineError';
    this.code = code;
  }
}

/** Throws E_BAD_COORDINATE unless lat/lng are finite numbers within [-90, 90] × [-180, 180]. */
export function assertCoordinate(lat: number, lng: number): void {
  // typeof guards matter: `NaN <= 90` is false, but a string '45' would slip through plain comparisons
  if (typeof lat !== 'number' || typeof lng !== 'number' || !(lat >= -90 && lat <= 90) || !(lng >= -180 && lng <= 180)) {
    throw new EngineError('E_BAD_COORDINATE', `coordinate out of range: lat=${String(lat)} lng=${String(lng)} (need finite |lat| <= 90, |lng| <= 180)`);
  }
}
