import { describe, expect, test } from 'vitest';
import { ApiError } from './api-error.js';
import { type ValidatorName, buildOpenApi, checkLocationBatch, validate, validators } from './schemas.js';

const T = 1_700_000_000_000;
const square = [[[13.3, 52.5], [13.4, 52.5], [13.4, 52.6], [13.3, 52.5]]];

/** At least one good value for every validator. */
const GOOD: Record<ValidatorName, unknown[]> = {
  id: ['courier-1', 'a:b.c_d-e', 'x'.repeat(64)],
  courierProfile: [{ vehicle: 'bike', capabilities: ['cold_chain'], capacity: 2 }, { vehicle: 'van', capacity: 40 }],
  courierBatchItem: [{ id: 'c1', vehicle: 'car', capacity: 3 }, { id: 'c2', vehicle: 'bike', capabilities: ['insulated'], capacity: 1 }],
  courierBatch: [[{ id: 'c1', vehicle: 'car', capacity: 3 }], { items: [] }, ['junk: checked item by item']],
  couriersQuery: [{}, { status: 'available', capability: 'medical', bbox: '-0.2,51.4,0.1,51.6', limit: '500', cursor: 'abc.def' }],
  sitesQuery: [{ kind: 'hospital', limit: '1' }],
  requestsQuery: [{ status: 'cancelled', kind: 'blood', since: String(T), limit: '20' }],
  historyQuery: [{}, { from: String(T - 3_600_000), to: String(T) }],
  pageQuery: [{ limit: '3' }],
  location: [{ lat: 52.5, lng: 13.4, ts: T }, { lat: -33.9, lng: 151.2, ts: T, speed: 8.3, heading: 270, accuracy: 5 }],
  locationItem: [{ id: 'c1', lat: 0, lng: 0, ts: T }],
  locationBatch: [[{ id: 'c1', lat: 0, lng: 0, ts: T }], { items: [] }],
  courierStatus: [{ status: 'available' }, { status: 'offline' }],
  site: [{ kind: 'blood_bank', name: 'Central', lat: 52.5, lng: 13.4 }, { kind: 'shelter', name: 'S', lat: 1, lng: 2, capacity: 40, occupancy: 3, open: false }],
  inventory: [{ units: [{ product: 'red_cells', bloodType: 'O-', count: 12, expiresAt: T + 86_400_000 }] }, { units: [] }],
  donor: [
    { bloodType: 'A+', lat: 1, lng: 2, available: true },
    { bloodType: 'O-', lat: 1, lng: 2, available: false, lastDonationAt: T - 1e9, lastDonation: { platelets: T - 1e8 } },
  ],
  nearbyQuery: [{ lat: '52.5', lng: '13.4' }, { lat: '1', lng: '2', kind: 'site', k: '50', radius: '2500', siteKind: 'hospital' }, { lat: '1', lng: '2', kind: 'donor', bloodType: 'unknown', product: 'plasma', units: '2' }],
  requestCreate: [
    { kind: 'delivery', pickup: { lat: 1, lng: 2 }, dropoff: { lat: 1.01, lng: 2.01 }, readyAt: T },
    { kind: 'delivery', pickupSiteId: 'rest-9', dropoff: { lat: 1.01, lng: 2.01 }, urgency: 'urgent', reference: 'order #42 / table 7' },
    { kind: 'rescue', pickup: { lat: 1, lng: 2 } },
    { kind: 'rescue', pickup: { lat: 1, lng: 2 }, dropoff: { lat: 1, lng: 3 }, deadline: T, coldChain: true, load: 3 },
    { kind: 'blood', hospitalSiteId: 'h1', product: 'red_cells', bloodType: 'A+', units: 4, urgency: 'emergency' },
    { kind: 'blood', dropoff: { lat: 1, lng: 2 }, product: 'platelets', bloodType: 'unknown', units: 1, urgency: 'routine' },
  ],
  progress: [{ status: 'picked_up' }, { status: 'delivered' }],
  geofence: [{ kind: 'zone', geometry: { type: 'Polygon', coordinates: square } }, { kind: 'zone', geometry: { type: 'MultiPolygon', coordinates: [square, square] } }],
  webhook: [{ url: 'https://hooks.example.com/gd', events: ['request.*', 'offer.accepted', 'fence.enter', 'fence.exit', 'donor.callout', 'stock.low', '*'], secret: '0123456789abcdef' }],
  wsLoc: [{ t: 'loc', lat: 1, lng: 2, ts: T, speed: 3 }],
  wsAccept: [{ t: 'accept', offerId: 'o1' }],
  wsDecline: [{ t: 'decline', offerId: 'o1' }],
  wsLocs: [{ t: 'locs', items: [['c1', 1, 2, T], ['c2', -1, -2, T]] }],
  wsWatch: [{ t: 'watch', bbox: [13, 52, 14, 53] }, { t: 'watch', bbox: [170, -10, -170, 10], kinds: ['couriers', 'fences'], hz: 5 }],
  wsTrack: [{ t: 'track', requestId: 'r1' }],
  wsFrame: [{ t: 'loc', lat: 1, lng: 2, ts: T }, { t: 'locs', items: [] }, { t: 'track', requestId: 'r1' }, { t: 'watch', bbox: [0, 0, 1, 1] }],
};

function failure(name: ValidatorName, data: unknown): string {
  try {
    validate(name, data);
  } catch (err) {
    expect(err).toBeInstanceOf(ApiError);
    expect((err as ApiError).status).toBe(400);
    expect((err as ApiError).code).toBe('E_VALIDATION');
    return (err as ApiError).message;
  }
  throw new Error(`expected ${name} to reject ${JSON.stringify(data)}`);
}

describe('validators', () => {
  test('good values of every schema are accepted', () => {
    for (const name of Object.keys(validators) as ValidatorName[]) {
      expect(GOOD[name]?.length, `good examples for ${name}`).toBeGreaterThan(0);
      for (const value of GOOD[name]) expect(() => validate(name, structuredClone(value)), `${name} ${JSON.stringify(value)}`).not.toThrow();
    }
  });

  test('NaN and infinities are rejected (MessagePack can carry them)', () => {
    expect(failure('location', { lat: NaN, lng: 1, ts: T })).toMatch(/^\/lat/);
    expect(failure('location', { lat: 1, lng: Infinity, ts: T })).toMatch(/^\/lng/);
  });

  test('out-of-range coordinates name the field, and |lat| > 90 hints at swapped lat/lng', () => {
    expect(failure('location', { lat: 120.5, lng: 30.1, ts: T })).toMatch(/^\/lat: must be <= 90 .*swapped/);
    expect(failure('site', { kind: 'hospital', name: 'H', lat: 1, lng: 181 })).toMatch(/^\/lng: must be <= 180$/);
    expect(failure('requestCreate', { kind: 'rescue', pickup: { lat: -91, lng: 0 } })).toMatch(/^\/pickup\/lat: .*swapped/);
  });

  test('ids follow PRODUCT §4 and a request body may not name its own id', () => {
    expect(failure('id', 'a@b')).toMatch(/pattern/);
    expect(failure('id', 'x'.repeat(65))).toMatch(/64/);
    expect(failure('requestCreate', { kind: 'rescue', id: 'mine', pickup: { lat: 1, lng: 2 } })).toBe("/: unknown field 'id': request ids are made by the server; put your own id in 'reference'");
    expect(failure('requestCreate', { kind: 'rescue', reference: 'r'.repeat(129), pickup: { lat: 1, lng: 2 } })).toMatch(/^\/reference/);
  });

  test('a gateway frame is checked as a whole here; its items are checked one by one on ingest', () => {
    expect(() => validate('wsLocs', { t: 'locs', items: [['c1', 95, 2, T], 'junk'] })).not.toThrow();
    expect(failure('wsLocs', { t: 'locs', items: 'junk' })).toMatch(/^\/items/);
    expect(failure('wsLocs', { t: 'locs', items: new Array(10_001).fill(['c1', 1, 2, T]) })).toMatch(/10000/);
  });

  test('unknown fields are rejected with their name', () => {
    expect(failure('location', { lat: 1, lng: 2, ts: T, altitude: 3 })).toBe("/: unknown field 'altitude'");
    expect(failure('requestCreate', { kind: 'rescue', pickup: { lat: 1, lng: 2, z: 0 } })).toBe("/pickup: unknown field 'z'");
    expect(failure('wsLoc', { t: 'loc', lat: 1, lng: 2, ts: T, admin: true })).toBe("/: unknown field 'admin'");
  });

  test('wrong types and missing fields are rejected', () => {
    expect(failure('location', { lat: '1', lng: 2, ts: T })).toMatch(/^\/lat: must be number/);
    expect(failure('location', { lat: 1, lng: 2 })).toBe("/: missing required field 'ts'");
    expect(failure('courierProfile', { vehicle: 'rocket', capacity: 1 })).toMatch(/^\/vehicle: must be one of "bike", "car", "van"/);
    expect(failure('courierProfile', { vehicle: 'car', capacity: 1.5 })).toMatch(/^\/capacity: must be integer/);
    expect(failure('donor', { bloodType: 'C+', lat: 1, lng: 2, available: true })).toMatch(/^\/bloodType/);
    expect(failure('location', [1, 2])).toMatch(/must be object/);
    expect(failure('location', null)).toMatch(/must be object/);
  });

  test('strings and arrays are bounded', () => {
    expect(failure('id', 'x'.repeat(65))).toMatch(/must NOT have more than 64 characters/);
    expect(failure('id', 'has space')).toMatch(/pattern/);
    expect(failure('wsLocs', { t: 'locs', items: Array.from({ length: 10_001 }, () => ['c', 0, 0, T]) })).toMatch(/more than 10000 items/);
    expect(failure('locationBatch', { items: new Array(10_001).fill({}) })).toBe('/: a location batch is an array of at most 10000 items, or { items: [...] }');
  });

  test('request kinds have their own required fields', () => {
    expect(failure('requestCreate', { kind: 'teleport' })).toBe('/kind: must be one of "delivery", "rescue", "blood"');
    expect(failure('requestCreate', { kind: 'delivery', dropoff: { lat: 1, lng: 2 } })).toBe('/: a delivery needs exactly one of pickup or pickupSiteId');
    expect(failure('requestCreate', { kind: 'delivery', pickup: { lat: 1, lng: 2 }, pickupSiteId: 's', dropoff: { lat: 1, lng: 2 } })).toMatch(/exactly one of pickup or pickupSiteId/);
    expect(failure('requestCreate', { kind: 'blood', product: 'red_cells', bloodType: 'A+', units: 2, urgency: 'urgent' })).toMatch(/hospitalSiteId or dropoff/);
    expect(failure('requestCreate', { kind: 'blood', hospitalSiteId: 'h', product: 'red_cells', bloodType: 'A+', units: 2 })).toBe("/: missing required field 'urgency'");
    expect(failure('requestCreate', { kind: 'blood', hospitalSiteId: 'h', product: 'red_cells', bloodType: 'A+', units: 0, urgency: 'urgent' })).toMatch(/^\/units/);
  });

  test('query strings are coerced and defaulted', () => {
    expect(validate('nearbyQuery', { lat: '52.5', lng: '-13', radius: '0' })).toEqual({ lat: 52.5, lng: -13, radius: 0, kind: 'courier', k: 10 });
    expect(failure('nearbyQuery', { lat: 'north', lng: '1' })).toMatch(/^\/lat: must be number/);
    expect(failure('nearbyQuery', { lat: '1', lng: '1', k: '1001' })).toMatch(/^\/k/);
    expect(failure('nearbyQuery', { lat: '1', lng: '1', radius: '-5' })).toMatch(/^\/radius/);
    expect(failure('nearbyQuery', { lat: '1', lng: '1', kind: 'taxi' })).toMatch(/^\/kind/);
    expect(failure('nearbyQuery', { lat: '1', lng: '1', debug: '1' })).toBe("/: unknown field 'debug'");
  });

  test('watch boxes need minLat <= maxLat but may cross the antimeridian', () => {
    expect(failure('wsWatch', { t: 'watch', bbox: [0, 10, 1, 5] })).toMatch(/minLat must not exceed maxLat/);
    expect(failure('wsFrame', { t: 'watch', bbox: [0, 10, 1, 5] })).toMatch(/minLat must not exceed maxLat/);
    expect(failure('wsWatch', { t: 'watch', bbox: [0, 0, 1] })).toMatch(/^\/bbox/);
    expect(failure('wsWatch', { t: 'watch', bbox: [0, 0, 1, 1], kinds: ['everything'] })).toMatch(/^\/kinds\/0/);
    expect(failure('wsFrame', { t: 'hello' })).toMatch(/^\/t: must be one of "loc", "accept", "decline", "locs", "watch", "track"$/);
  });

  test('a validator is a type guard whose errors describe the last failure', () => {
    expect(validators.progress({ status: 'delivered' })).toBe(true);
    expect(validators.progress({ status: 'lost' })).toBe(false);
    expect(validators.progress.errors?.[0]?.instancePath).toBe('/status');
  });

  test('a location batch is split into valid items and rejections by index', () => {
    const batch = [{ id: 'a', lat: 1, lng: 2, ts: T }, { id: 'b', lat: 100, lng: 2, ts: T }, { lat: 1, lng: 2, ts: T }, { id: 'c', lat: 3, lng: 4, ts: T }];
    const { items, indices, rejected } = checkLocationBatch(validate('locationBatch', batch));
    expect(items.map((i) => i.id)).toEqual(['a', 'c']);
    expect(indices).toEqual([0, 3]);
    expect(rejected.map((r) => [r.index, r.code])).toEqual([[1, 'E_VALIDATION'], [2, 'E_VALIDATION']]);
    expect(rejected[0].message).toMatch(/swapped/);
    expect(checkLocationBatch(validate('locationBatch', { items: batch })).indices).toEqual([0, 3]);
  });
});

describe('buildOpenApi', () => {
  const PRODUCT_PATHS: [string, string][] = [
    ['put', '/v1/couriers/{id}'], ['post', '/v1/couriers/{id}/location'], ['post', '/v1/locations'], ['put', '/v1/couriers/{id}/status'],
    ['put', '/v1/sites/{id}'], ['put', '/v1/sites/{id}/inventory'], ['put', '/v1/donors/{id}'], ['get', '/v1/nearby'], ['post', '/v1/requests'],
    ['get', '/v1/requests/{id}'], ['post', '/v1/requests/{id}/cancel'], ['post', '/v1/offers/{id}/accept'], ['post', '/v1/offers/{id}/decline'],
    ['post', '/v1/requests/{id}/progress'], ['put', '/v1/geofences/{id}'], ['get', '/health'], ['get', '/ready'], ['get', '/metrics'], ['get', '/openapi.json'], ['get', '/v1/stream'],
    ['put', '/v1/webhooks/{id}'], ['delete', '/v1/webhooks/{id}'], ['get', '/v1/webhooks/{id}/deliveries'],
  ];
  type Doc = { openapi: string; paths: Record<string, Record<string, any>>; components: { schemas: Record<string, unknown>; securitySchemes: Record<string, any> } };
  const doc = buildOpenApi() as Doc;

  test('every path of PRODUCT §4 is described with its method', () => {
    expect(doc.openapi).toBe('3.1.0');
    for (const [method, path] of PRODUCT_PATHS) expect(doc.paths[path]?.[method], `${method} ${path}`).toBeDefined();
  });

  test('request bodies and query parameters come from the validator schemas', () => {
    expect(doc.paths['/v1/couriers/{id}/location'].post.requestBody.content['application/json'].schema).toEqual({ $ref: '#/components/schemas/location' });
    expect((doc.components.schemas.location as { required: string[] }).required).toEqual(['lat', 'lng', 'ts']);
    const names = (doc.paths['/v1/nearby'].get.parameters as { name: string; in: string }[]).filter((p) => p.in === 'query').map((p) => p.name);
    expect(names).toEqual(expect.arrayContaining(['lat', 'lng', 'kind', 'k', 'radius', 'siteKind', 'capability', 'bloodType', 'product', 'units']));
    expect(doc.paths['/v1/requests'].post.parameters.map((p: { name: string }) => p.name)).toContain('Idempotency-Key');
  });

  test('bearer and API-key security schemes and the error shape are declared; probes need no auth', () => {
    expect(doc.components.securitySchemes.bearer).toMatchObject({ type: 'http', scheme: 'bearer' });
    expect(doc.components.securitySchemes.apiKey).toMatchObject({ type: 'apiKey', in: 'header', name: 'X-API-Key' });
    expect(doc.components.schemas.Error).toMatchObject({ required: ['error'] });
    expect(doc.paths['/health'].get.security).toEqual([]);
  });

  test('each call returns a fresh document, so a caller cannot alter the validators', () => {
    (buildOpenApi() as Doc).components.schemas.location = 'changed';
    expect((buildOpenApi() as Doc).components.schemas.location).not.toBe('changed');
    expect(JSON.parse(JSON.stringify(buildOpenApi()))).toEqual(buildOpenApi());
  });
});
