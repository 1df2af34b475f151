/**
 * JSON Schemas (draft 2020-12) for every request body, query and WebSocket frame of PRODUCT §4, compiled once
 * at module load; the OpenAPI document (openapi.ts) is generated from these same objects.
 *
 *   decoded body / query / frame ─► validators[name](data) ─► typed value
 *                                        └─ fails ─► validate() throws ApiError 400 E_VALIDATION "<path>: <why>"
 *
 * Every object is closed (`additionalProperties: false`), numbers are finite (ajv strictNumbers), strings and
 * arrays are bounded. Query strings are coerced (numbers, booleans) by a second ajv instance.
 */
import { Ajv2020, type ErrorObject, type ValidateFunction } from 'ajv/dist/2020.js';
import { BLOOD_PRODUCTS, BLOOD_TYPES, type BloodProduct, type BloodType, type RecipientType } from '../engine/blood-types.js';
import { REQUEST_KINDS, REQUEST_STATUSES, URGENCIES, type Urgency } from '../dispatch/request-vocabulary.js';
import { CAPABILITIES, COURIER_STATUSES, VEHICLES, type Capability, type Vehicle } from '../engine/courier-attributes.js';
import { SITE_KINDS, type SiteKind } from '../engine/site-index.js';
import { ApiError } from './api-error.js';

export { buildOpenApi } from './openapi.js';

/** Longest id (courier, site, donor, request, offer, fence): PRODUCT §4 `[A-Za-z0-9._:-]{1,64}`. */
export const MAX_ID_LENGTH = 64;
/** THE id pattern of every id a client names or sends back (admin-chosen ids, offer and request ids). */
export const ID_PATTERN = /^[A-Za-z0-9._:-]{1,64}$/;
/** Longest client `reference` of a request. */
export const MAX_REFERENCE_LENGTH = 128;
/** Most items in one batch (HTTP location batch, WS `locs`, inventory): ~350 KiB as MessagePack pings. */
export const MAX_BATCH_ITEMS = 10_000;
/**
 * Items of a courier batch (PUT /v1/couriers) one rate-limit token pays for: a full batch of 10,000 costs 10
 * tokens, so a fleet of 100,000 onboards in 10 calls (100 tokens) inside the default burst of 200 — while a
 * principal still pays for the work a big batch makes, unlike a flat one token per call.
 */
export const COURIER_ITEMS_PER_TOKEN = 1000;
/** Most items in one page of a list (couriers, sites, requests); 100 when the query names none. */
export const MAX_LIST_LIMIT = 500;
/** Latest timestamp accepted (ms): year 2286; anything larger is seconds-vs-ms confusion or garbage. */
const MAX_TIME_MS = 1e13;

export interface LatLng { lat: number; lng: number }
export interface CourierProfileBody { vehicle: Vehicle; capabilities: Capability[]; capacity: number }
export interface LocationBody { lat: number; lng: number; ts: number; speed?: number; heading?: number; accuracy?: number }
export interface LocationItem extends LocationBody { id: string }
/** `POST /v1/locations` accepts a bare array or `{ items }`; items are checked one by one (locationItem). */
export type LocationBatchBody = unknown[] | { items: unknown[] };
export interface CourierStatusBody { status: 'available' | 'offline' }
export interface SiteBody { kind: SiteKind; name: string; lat: number; lng: number; capacity?: number; occupancy?: number; open?: boolean }
export interface InventoryBody { units: { product: BloodProduct; bloodType: BloodType; count: number; expiresAt: number }[] }
export interface DonorBody {
  bloodType: BloodType;
  lat: number;
  lng: number;
  /** Last whole-blood donation (ms); shorthand for `lastDonation.whole_blood`. */
  lastDonationAt?: number;
  lastDonation?: Partial<Record<BloodProduct, number>>;
  available: boolean;
}
export interface NearbyQuery {
  lat: number; lng: number; kind: 'courier' | 'donor' | 'site'; k: number; radius?: number;
  siteKind?: SiteKind; capability?: Capability; bloodType?: RecipientType; product?: BloodProduct; units?: number; status?: 'offline' | 'available' | 'offered' | 'busy';
}
interface RequestBase { reference?: string; urgency?: Urgency; deadline?: number }
export interface DeliveryRequestBody extends RequestBase { kind: 'delivery'; pickup?: LatLng; pickupSiteId?: string; dropoff: LatLng; readyAt?: number; coldChain?: boolean; load?: number }
export interface RescueRequestBody extends RequestBase { kind: 'rescue'; pickup: LatLng; dropoff?: LatLng; readyAt?: number; pickupBy?: number; coldChain?: boolean; load?: number }
export interface BloodRequestBody extends RequestBase { kind: 'blood'; hospitalSiteId?: string; dropoff?: LatLng; product: BloodProduct; bloodType: RecipientType; units: number; urgency: Urgency }
export type RequestCreateBody = DeliveryRequestBody | RescueRequestBody | BloodRequestBody;
export interface ProgressBody { status: 'picked_up' | 'delivered' }
export interface GeofenceBody { kind: string; geometry: { type: 'Polygon'; coordinates: number[][][] } | { type: 'MultiPolygon'; coordinates: number[][][][] } }
export interface CourierBatchItem extends CourierProfileBody { id: string }
/** `PUT /v1/couriers` accepts a bare array or `{ items }`, like POST /v1/locations; items are checked one by one (courierBatchItem). */
export type CourierBatchBody = unknown[] | { items: unknown[] };
export interface CouriersQuery { status?: (typeof COURIER_STATUSES)[number]; bbox?: string; capability?: Capability; limit: number; cursor?: string }
export interface SitesQuery { kind?: SiteKind; bbox?: string; limit: number; cursor?: string }
export interface RequestsQuery { status?: string; kind?: string; since?: number; limit: number; cursor?: string }
export interface HistoryQuery { from?: number; to?: number }
export interface WebhookBody { url: string; events: string[]; secret: string }
export interface WsLocFrame extends LocationBody { t: 'loc' }
export interface WsOfferFrame { t: 'accept' | 'decline'; offerId: string }
export interface WsLocsFrame { t: 'locs'; items: [string, number, number, number][] }
export type WatchKind = 'couriers' | 'requests' | 'fences';
export interface WsWatchFrame { t: 'watch'; bbox: [number, number, number, number]; kinds?: WatchKind[]; hz?: number }
export interface WsTrackFrame { t: 'track'; requestId: string }
export type WsClientFrame = WsLocFrame | WsOfferFrame | WsLocsFrame | WsWatchFrame | WsTrackFrame;

const id = { type: 'string', minLength: 1, maxLength: MAX_ID_LENGTH, pattern: ID_PATTERN.source } as const;
/**
 * Every event type the outbox holds, so what a webhook can subscribe to: an unknown name is refused rather than
 * silently matching nothing. Offers declined, expired or revoked arrive as `request.pending` with their `cause`.
 */
export const WEBHOOK_EVENT_TYPES = Object.freeze([
  'request.created', 'request.offered', 'request.assigned', 'request.picked_up', 'request.delivered', 'request.cancelled',
  'request.failed', 'request.pending', 'offer.created', 'offer.accepted', 'courier.status', 'reservation.released',
  'recovery.expired', 'fence.enter', 'fence.exit', 'donor.callout', 'stock.low',
] as const);
/** Event names a webhook subscribes to: a known type, a family (`request.*`, `offer.*` …), or `*` (all of them). */
const WEBHOOK_EVENT_PATTERN = `^(\\*|(${[...new Set(WEBHOOK_EVENT_TYPES.map((t) => t.split('.')[0]))].join('|')})\\.\\*|${WEBHOOK_EVENT_TYPES.map((t) => t.replace('.', '\\.')).join('|')})$`;
const lat = { type: 'number', minimum: -90, maximum: 90 } as const;
const lng = { type: 'number', minimum: -180, maximum: 180 } as const;
// whole milliseconds: a fraction is a unit mix-up, and one as tiny as 5e-324 underflows the database's timestamps
const time = { type: 'integer', minimum: 0, maximum: MAX_TIME_MS } as const;
const bloodType = { enum: [...BLOOD_TYPES] } as const;
const recipientType = { enum: [...BLOOD_TYPES, 'unknown'] } as const;
const product = { enum: [...BLOOD_PRODUCTS] } as const;
const urgency = { enum: [...URGENCIES] } as const;
const latLng = { type: 'object', additionalProperties: false, required: ['lat', 'lng'], properties: { lat, lng } } as const;
// speeds in m/s (a van on a motorway is ~40; 150 catches km/h sent as m/s), heading in degrees, accuracy in metres
const fix = {
  lat, lng, ts: time,
  speed: { type: 'number', minimum: 0, maximum: 150 },
  heading: { type: 'number', minimum: 0, maximum: 360 },
  accuracy: { type: 'number', minimum: 0, maximum: 100_000 },
} as const;
const position = { type: 'array', minItems: 2, maxItems: 3, prefixItems: [lng, lat], items: { type: 'number' } } as const;
const ring = { type: 'array', minItems: 4, maxItems: MAX_BATCH_ITEMS, items: position } as const;
const polygonCoords = { type: 'array', minItems: 1, maxItems: 100, items: ring } as const;
const bbox = { type: 'array', minItems: 4, maxItems: 4, prefixItems: [lng, lat, lng, lat], items: false } as const;
const obj = (required: readonly string[], properties: Record<string, unknown>, extra: Record<string, unknown> = {}) =>
  ({ type: 'object', additionalProperties: false, required: [...required], properties, ...extra }) as const;

// no `id`: request ids are made by the server; a client's own goes in `reference`
const requestCommon = { reference: { type: 'string', minLength: 1, maxLength: MAX_REFERENCE_LENGTH }, urgency, deadline: time } as const;

const courierProfileFields = {
  vehicle: { enum: [...VEHICLES] },
  capabilities: { type: 'array', maxItems: CAPABILITIES.length, uniqueItems: true, items: { enum: [...CAPABILITIES] }, default: [] },
  capacity: { type: 'integer', minimum: 1, maximum: 1000 },
} as const;
// list queries: a page of at most MAX_LIST_LIMIT, an opaque cursor from the previous page's `next`
const listPage = {
  limit: { type: 'integer', minimum: 1, maximum: MAX_LIST_LIMIT, default: 100 },
  cursor: { type: 'string', minLength: 1, maxLength: 512, description: 'the `next` of the previous page, as it was' },
} as const;
const bboxParam = {
  type: 'string', maxLength: 200, pattern: '^[-+0-9.eE]+(,[-+0-9.eE]+){3}$',
  description: 'minLng,minLat,maxLng,maxLat',
} as const;

const wsLoc = obj(['t', 'lat', 'lng', 'ts'], { t: { const: 'loc' }, ...fix });
const wsAccept = obj(['t', 'offerId'], { t: { const: 'accept' }, offerId: id });
const wsDecline = obj(['t', 'offerId'], { t: { const: 'decline' }, offerId: id });
const wsLocs = obj(['t', 'items'], {
  t: { const: 'locs' },
  // each item is checked on ingest, so one bad item is rejected by index and the rest applied
  items: { type: 'array', maxItems: MAX_BATCH_ITEMS },
});
const wsWatch = obj(['t', 'bbox'], {
  t: { const: 'watch' }, bbox,
  kinds: { type: 'array', maxItems: 3, uniqueItems: true, items: { enum: ['couriers', 'requests', 'fences'] } },
  // updates per second; the server clamps to its configured maximum
  hz: { type: 'number', exclusiveMinimum: 0, maximum: 60 },
});
const wsTrack = obj(['t', 'requestId'], { t: { const: 'track' }, requestId: id });

/** Every schema by validator name; shared with the OpenAPI generator. */
export const SCHEMAS = {
  id,
  courierProfile: obj(['vehicle', 'capacity'], courierProfileFields),
  courierBatchItem: obj(['id', 'vehicle', 'capacity'], { id, ...courierProfileFields }),
  courierBatch: {
    description: `a courier batch is an array of at most ${MAX_BATCH_ITEMS} profiles { id, vehicle, capabilities, capacity }, or { items: [...] }`,
    oneOf: [
      { type: 'array', maxItems: MAX_BATCH_ITEMS },
      obj(['items'], { items: { type: 'array', maxItems: MAX_BATCH_ITEMS } }),
    ],
  },
  couriersQuery: obj([], { status: { enum: [...COURIER_STATUSES] }, bbox: bboxParam, capability: { enum: [...CAPABILITIES] }, ...listPage }),
  sitesQuery: obj([], { kind: { enum: [...SITE_KINDS] }, bbox: bboxParam, ...listPage }),
  requestsQuery: obj([], { status: { enum: [...REQUEST_STATUSES] }, kind: { enum: [...REQUEST_KINDS] }, since: time, ...listPage }),
  historyQuery: obj([], { from: time, to: time }),
  pageQuery: obj([], listPage),
  location: obj(['lat', 'lng', 'ts'], fix),
  locationItem: obj(['id', 'lat', 'lng', 'ts'], { id, ...fix }),
  locationBatch: {
    description: `a location batch is an array of at most ${MAX_BATCH_ITEMS} items, or { items: [...] }`,
    oneOf: [
      { type: 'array', maxItems: MAX_BATCH_ITEMS },
      obj(['items'], { items: { type: 'array', maxItems: MAX_BATCH_ITEMS } }),
    ],
  },
  courierStatus: obj(['status'], { status: { enum: ['available', 'offline'] } }),
  site: obj(['kind', 'name', 'lat', 'lng'], {
    kind: { enum: [...SITE_KINDS] },
    name: { type: 'string', minLength: 1, maxLength: 200 },
    lat, lng,
    capacity: { type: 'integer', minimum: 0, maximum: 1e9 },
    occupancy: { type: 'integer', minimum: 0, maximum: 1e9 },
    open: { type: 'boolean' },
  }),
  inventory: obj(['units'], {
    units: {
      type: 'array', maxItems: MAX_BATCH_ITEMS,
      items: obj(['product', 'bloodType', 'count', 'expiresAt'], { product, bloodType, count: { type: 'integer', minimum: 0, maximum: 1_000_000 }, expiresAt: time }),
    },
  }),
  donor: obj(['bloodType', 'lat', 'lng', 'available'], {
    bloodType, lat, lng,
    lastDonationAt: time,
    lastDonation: obj([], Object.fromEntries(BLOOD_PRODUCTS.map((p) => [p, time]))),
    available: { type: 'boolean' },
  }),
  nearbyQuery: obj(['lat', 'lng'], {
    lat, lng,
    kind: { enum: ['courier', 'donor', 'site'], default: 'courier' },
    k: { type: 'integer', minimum: 1, maximum: 1000, default: 10 },
    // half the Earth's circumference: no two points are farther apart
    radius: { type: 'number', minimum: 0, maximum: 20_037_509 },
    siteKind: { enum: [...SITE_KINDS] },
    capability: { enum: [...CAPABILITIES] },
    bloodType: recipientType,
    product,
    units: { type: 'integer', minimum: 1, maximum: 10_000 },
    status: { enum: [...COURIER_STATUSES] },
  }),
  requestCreate: {
    type: 'object',
    required: ['kind'],
    discriminator: { propertyName: 'kind' },
    oneOf: [
      obj(['kind', 'dropoff'], {
        kind: { const: 'delivery' }, ...requestCommon, pickup: latLng, pickupSiteId: id, dropoff: latLng,
        readyAt: time, coldChain: { type: 'boolean' }, load: { type: 'integer', minimum: 1, maximum: 1000 },
      }, { oneOf: [{ required: ['pickup'] }, { required: ['pickupSiteId'] }], description: 'a delivery needs exactly one of pickup or pickupSiteId' }),
      obj(['kind', 'pickup'], {
        kind: { const: 'rescue' }, ...requestCommon, pickup: latLng, dropoff: latLng,
        readyAt: time, pickupBy: time, coldChain: { type: 'boolean' }, load: { type: 'integer', minimum: 1, maximum: 1000 },
      }),
      obj(['kind', 'product', 'bloodType', 'units', 'urgency'], {
        kind: { const: 'blood' }, ...requestCommon, hospitalSiteId: id, dropoff: latLng,
        product, bloodType: recipientType, units: { type: 'integer', minimum: 1, maximum: 100 },
      }, { oneOf: [{ required: ['hospitalSiteId'] }, { required: ['dropoff'] }], description: 'a blood request needs exactly one of hospitalSiteId or dropoff' }),
    ],
  },
  progress: obj(['status'], { status: { enum: ['picked_up', 'delivered'] } }),
  geofence: obj(['kind', 'geometry'], {
    kind: { type: 'string', minLength: 1, maxLength: 64 },
    geometry: {
      type: 'object',
      required: ['type', 'coordinates'],
      discriminator: { propertyName: 'type' },
      oneOf: [
        obj(['type', 'coordinates'], { type: { const: 'Polygon' }, coordinates: polygonCoords, bbox: { type: 'array', items: { type: 'number' }, maxItems: 6 } }),
        obj(['type', 'coordinates'], { type: { const: 'MultiPolygon' }, coordinates: { type: 'array', minItems: 1, maxItems: 100, items: polygonCoords }, bbox: { type: 'array', items: { type: 'number' }, maxItems: 6 } }),
      ],
    },
  }),
  webhook: obj(['url', 'events', 'secret'], {
    url: { type: 'string', minLength: 8, maxLength: 2048 },
    events: { type: 'array', minItems: 1, maxItems: 32, items: { type: 'string', pattern: WEBHOOK_EVENT_PATTERN } },
    // ≥ 16 characters, not all blank: a guessable secret makes the signature worthless; never echoed back
    secret: { type: 'string', minLength: 16, maxLength: 256, pattern: '\\S' },
  }),
  wsLoc: wsLoc,
  wsAccept: wsAccept,
  wsDecline: wsDecline,
  wsLocs: wsLocs,
  wsWatch: wsWatch,
  wsTrack: wsTrack,
  /** Any client frame, chosen by `t`. */
  wsFrame: { type: 'object', required: ['t'], discriminator: { propertyName: 't' }, oneOf: [wsLoc, wsAccept, wsDecline, wsLocs, wsWatch, wsTrack] },
} as const;

/** The TypeScript type each validator proves. */
export interface SchemaTypes {
  id: string;
  courierProfile: CourierProfileBody;
  courierBatchItem: CourierBatchItem;
  courierBatch: CourierBatchBody;
  couriersQuery: CouriersQuery;
  sitesQuery: SitesQuery;
  requestsQuery: RequestsQuery;
  historyQuery: HistoryQuery;
  pageQuery: { limit: number; cursor?: string };
  location: LocationBody;
  locationItem: LocationItem;
  locationBatch: LocationBatchBody;
  courierStatus: CourierStatusBody;
  site: SiteBody;
  inventory: InventoryBody;
  donor: DonorBody;
  nearbyQuery: NearbyQuery;
  requestCreate: RequestCreateBody;
  progress: ProgressBody;
  geofence: GeofenceBody;
  webhook: WebhookBody;
  wsLoc: WsLocFrame;
  wsAccept: WsOfferFrame;
  wsDecline: WsOfferFrame;
  wsLocs: WsLocsFrame;
  wsWatch: WsWatchFrame;
  wsTrack: WsTrackFrame;
  wsFrame: WsClientFrame;
}
export type ValidatorName = keyof SchemaTypes;
/** A compiled validator: a type guard whose `errors` describe the last failure. */
export type Validator<T> = ValidateFunction<T>;

// verbose: errors carry their parentSchema, whose `description` gives oneOf failures a readable message
// strictRequired off: discriminated unions and "one of these two fields" rules name properties defined in branches;
// strictTuples off: a GeoJSON position is [lng, lat] with an optional altitude
const ajvOptions = { strict: true, strictRequired: false, strictTuples: false, strictNumbers: true, allErrors: false, discriminator: true, useDefaults: true, verbose: true } as const;
const bodyAjv = new Ajv2020(ajvOptions);
// query-string values arrive as strings: this instance coerces '52.5' → 52.5 and 'true' → true
const queryAjv = new Ajv2020({ ...ajvOptions, coerceTypes: true });

/** The schemas of query strings, compiled by the coercing instance. */
const QUERY_SCHEMAS: ReadonlySet<ValidatorName> = new Set(['nearbyQuery', 'couriersQuery', 'sitesQuery', 'requestsQuery', 'historyQuery', 'pageQuery']);

/** Every validator, compiled once at module load. */
export const validators: { readonly [K in ValidatorName]: Validator<SchemaTypes[K]> } = Object.freeze(
  Object.fromEntries(
    (Object.keys(SCHEMAS) as ValidatorName[]).map((name) => [name, (QUERY_SCHEMAS.has(name) ? queryAjv : bodyAjv).compile(SCHEMAS[name])]),
  ) as { [K in ValidatorName]: Validator<SchemaTypes[K]> },
);

/** Validates and returns the typed value, or throws ApiError 400 E_VALIDATION naming the field. */
export function validate<K extends ValidatorName>(name: K, data: unknown): SchemaTypes[K];
export function validate<T>(name: ValidatorName, data: unknown): T;
export function validate(name: ValidatorName, data: unknown): unknown {
  const validator = validators[name] as Validator<unknown>;
  if (!validator(data)) throw new ApiError(400, 'E_VALIDATION', firstErrorMessage(validator));
  if (name === 'wsFrame' || name === 'wsWatch') checkWatchBox(data as WsClientFrame);
  return data;
}

/** The first error of the validator's last failed call as "<path>: <why>", with a lat/lng swap hint. */
export function firstErrorMessage(validator: Validator<unknown>): string {
  const errors = validator.errors ?? [];
  if (errors.length === 0) return 'invalid value';
  const described = errors.find((e) => (e.keyword === 'oneOf' || e.keyword === 'anyOf') && typeof e.parentSchema?.description === 'string');
  if (described) return `${described.instancePath || '/'}: ${described.parentSchema?.description as string}`;
  return describe(errors[0]);
}

/** A bulk body split into its valid items (with their indices) and per-index rejections. */
export interface SplitBatch<T> {
  items: T[];
  indices: number[];
  rejected: { index: number; code: string; message: string }[];
}

/** Splits a location batch into valid items and per-index rejections (the batch itself must be valid). */
export function checkLocationBatch(batch: LocationBatchBody): SplitBatch<LocationItem> {
  return splitBatch(batch, validators.locationItem as Validator<LocationItem>);
}

/** Splits a courier batch into valid items and per-index rejections (the batch itself must be valid). */
export function checkCourierBatch(batch: CourierBatchBody): SplitBatch<CourierBatchItem> {
  return splitBatch(batch, validators.courierBatchItem as Validator<CourierBatchItem>);
}

// a bare array or `{ items }`, each item checked on its own by `check`
function splitBatch<T>(batch: unknown[] | { items: unknown[] }, check: Validator<T>): SplitBatch<T> {
  const list = Array.isArray(batch) ? batch : batch.items;
  const out: SplitBatch<T> = { items: [], indices: [], rejected: [] };
  list.forEach((item, index) => {
    if (check(item)) {
      out.items.push(item);
      out.indices.push(index);
    } else {
      out.rejected.push({ index, code: 'E_VALIDATION', message: firstErrorMessage(check as Validator<unknown>) });
    }
  });
  return out;
}

function describe(e: ErrorObject): string {
  const path = e.instancePath || '/';
  switch (e.keyword) {
    case 'additionalProperties': {
      const field = String(e.params.additionalProperty);
      const hint = field === 'id' && path === '/' && (e.parentSchema as { properties?: Record<string, unknown> } | undefined)?.properties?.reference !== undefined
        ? ': request ids are made by the server; put your own id in \'reference\''
        : '';
      return `${path}: unknown field '${field}'${hint}`;
    }
    case 'required':
      return `${path}: missing required field '${String(e.params.missingProperty)}'`;
    case 'discriminator': {
      const tag = String(e.params.tag);
      const branches = ((e.parentSchema?.oneOf ?? []) as { properties?: Record<string, { const?: unknown }> }[]).map((b) => JSON.stringify(b.properties?.[tag]?.const));
      return `${path === '/' ? '' : path}/${tag}: must be one of ${branches.join(', ')}`;
    }
    case 'enum':
      return `${path}: must be one of ${(e.params.allowedValues as unknown[]).map((v) => JSON.stringify(v)).join(', ')}`;
    case 'minimum':
    case 'maximum': {
      const swapped = Math.abs(e.params.limit as number) === 90 ? ' (lat must be within ±90 and lng within ±180: are lat and lng swapped?)' : '';
      return `${path}: ${e.message ?? 'out of range'}${swapped}`;
    }
    default:
      return `${path}: ${e.message ?? 'invalid'}`;
  }
}

function checkWatchBox(frame: WsClientFrame): void {
  if (frame.t === 'watch' && frame.bbox[1] > frame.bbox[3]) {
    throw new ApiError(400, 'E_VALIDATION', '/bbox: minLat must not exceed maxLat ([minLng, minLat, maxLng, maxLat])');
  }
}
