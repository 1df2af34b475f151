/**
 * The OpenAPI 3.1 description of PRODUCT §4, generated from the same JSON Schemas the validators compile
 * (schemas.ts), so the document cannot drift from what the server accepts.
 */
import { COURIER_ITEMS_PER_TOKEN, SCHEMAS } from './schemas.js';

type Json = Record<string, unknown>;
type SchemaName = keyof typeof SCHEMAS;

const ERROR_SCHEMA = {
  type: 'object',
  required: ['error'],
  properties: { error: { type: 'object', required: ['code', 'message'], properties: { code: { type: 'string', pattern: '^E_[A-Z_]+$' }, message: { type: 'string' } } } },
};

/** An OpenAPI 3.1 document for every HTTP path of PRODUCT §4 (a fresh object on each call). */
export function buildOpenApi(): object {
  const schemas: Json = structuredClone(SCHEMAS) as unknown as Json;
  return {
    openapi: '3.1.0',
    jsonSchemaDialect: 'https://json-schema.org/draft/2020-12/schema',
    info: { title: 'GeoDispatch API', version: '1', description:
        'Real-time geo-dispatch: couriers, donors, sites, requests and offers. Bodies are JSON or MessagePack (application/msgpack); replies follow Accept. ' +
        'Every 2xx to a write means it is stored. 503 E_STORE_UNAVAILABLE: nothing was stored or changed, retry later; 409 E_STORE_REFUSED: the store refused this change, nothing changed; ' +
        '504 E_COMMIT_UNCERTAIN: the store did not confirm in time, the change is kept and will be stored — read it back before retrying. ' +
        'Positions are written behind: a crash may lose the last POSITION_FLUSH_MS of pings. Request ids are made by the server; put your own in `reference`.' },
    security: [{ bearer: [] }, { apiKey: [] }],
    paths: {
      '/v1/couriers/{id}': {
        put: op('Upsert a courier profile (admin, dispatcher)', { body: 'courierProfile', id: true, ok: 200 }),
        get: op('A courier: profile, status, last position and ping time (ts), live offer or request (admin, dispatcher)', { id: true, ok: 200 }),
        delete: op('Delete a courier, stored first; 409 E_COURIER_BUSY while it holds a live offer or assignment (admin, dispatcher)', { id: true, ok: 204 }),
      },
      '/v1/couriers': {
        put: op(`Bulk upsert courier profiles, at most 10,000 per call, one store write; bad items are rejected by index (admin, dispatcher). One rate-limit token per ${COURIER_ITEMS_PER_TOKEN} items`, { body: 'courierBatch', ok: 200, reply: BATCH_REPLY }),
        get: op('List couriers by id, cursor-paginated (admin, dispatcher)', { query: 'couriersQuery', ok: 200, reply: PAGE_REPLY }),
      },
      '/v1/couriers/{id}/history': { get: op('A courier\'s stored (sampled) track as a GeoJSON Feature: LineString + properties.times; at most 7 days and 10,000 points per read (admin, dispatcher)', { id: true, query: 'historyQuery', ok: 200 }) },
      '/v1/couriers/{id}/location': { post: op('Report a courier position (driver as itself, admin)', { body: 'location', id: true, ok: 204 }) },
      '/v1/locations': { post: op('Report a batch of positions (fleet gateway, admin)', { body: 'locationBatch', ok: 200, reply: BATCH_REPLY }) },
      '/v1/couriers/{id}/status': { put: op('Set a courier available or offline (driver as itself, dispatcher)', { body: 'courierStatus', id: true, ok: 200 }) },
      '/v1/sites/{id}': {
        put: op('Upsert a site (admin)', { body: 'site', id: true, ok: 200 }),
        get: op('A site with its inventory lots (admin, dispatcher)', { id: true, ok: 200 }),
        delete: op('Delete a site and its stock, stored first; 409 E_SITE_RESERVED while units are reserved (admin)', { id: true, ok: 204 }),
      },
      '/v1/sites': { get: op('List sites by id, cursor-paginated (admin, dispatcher)', { query: 'sitesQuery', ok: 200, reply: PAGE_REPLY }) },
      '/v1/sites/{id}/inventory': { put: op('Replace a site blood inventory (admin)', { body: 'inventory', id: true, ok: 200 }) },
      '/v1/donors/{id}': {
        put: op('Upsert a blood donor (admin)', { body: 'donor', id: true, ok: 200 }),
        get: op('A donor (admin: health data)', { id: true, ok: 200 }),
        delete: op('Delete a donor, stored first (admin)', { id: true, ok: 204 }),
      },
      '/v1/nearby': { get: op('Nearest couriers, donors or sites, nearest first (any role); courier positions rounded to 7 decimal places', { query: 'nearbyQuery', ok: 200 }) },
      '/v1/requests': {
        post: op('Create a delivery, rescue or blood request; returns the plan (requester, dispatcher)', { body: 'requestCreate', ok: 201, idempotent: true }),
        get: op('List requests newest first, cursor-paginated; a requester sees its own only (requester, dispatcher, admin)', { query: 'requestsQuery', ok: 200, reply: PAGE_REPLY }),
      },
      '/v1/requests/{id}': { get: op('Request status, assignment, sources and ETA (owner, dispatcher)', { id: true, ok: 200 }) },
      '/v1/requests/{id}/cancel': { post: op('Cancel a request (owner, dispatcher)', { id: true, ok: 200 }) },
      '/v1/requests/{id}/progress': { post: op('Report pickup or delivery (assigned driver)', { body: 'progress', id: true, ok: 200 }) },
      '/v1/offers/{id}/accept': { post: op('Accept an offer (driver it was made to)', { id: true, ok: 200 }) },
      '/v1/offers/{id}/decline': { post: op('Decline an offer (driver it was made to)', { id: true, ok: 200 }) },
      '/v1/geofences/{id}': {
        put: op('Upsert a geofence (admin)', { body: 'geofence', id: true, ok: 200 }),
        delete: op('Delete a geofence, stored first (admin)', { id: true, ok: 204 }),
      },
      '/v1/geofences': { get: op('List geofences by id, cursor-paginated (admin)', { query: 'pageQuery', ok: 200, reply: PAGE_REPLY }) },
      '/v1/webhooks/{id}': {
        put: op('Register or change a webhook (admin); the URL must resolve to public addresses unless WEBHOOK_ALLOW_PRIVATE=1; the secret is never returned', { body: 'webhook', id: true, ok: 200, reply: WEBHOOK_REPLY }),
        delete: op('Remove a webhook and its delivery log (admin)', { id: true, ok: 204 }),
      },
      '/v1/webhooks/{id}/deliveries': {
        get: { ...op('The delivery log of a webhook, newest event first (admin)', { id: true, ok: 200, reply: DELIVERIES_REPLY }), parameters: [
          { name: 'id', in: 'path', required: true, schema: { $ref: '#/components/schemas/id' } },
          { name: 'before', in: 'query', required: false, schema: { type: 'integer', minimum: 1 }, description: 'the `next` of the previous page' },
          { name: 'limit', in: 'query', required: false, schema: { type: 'integer', minimum: 1, maximum: 500, default: 50 } },
        ] },
      },
      '/v1/stream': {
        get: {
          summary: 'WebSocket stream (upgrade); role from the token (?access_token= or Authorization). Client frames: components.schemas.wsFrame',
          parameters: [{ name: 'access_token', in: 'query', required: false, schema: { type: 'string' } }],
          responses: { '101': { description: 'Switching Protocols' }, ...errorResponses() },
        },
      },
      '/health': { get: open('Liveness', 'application/json') },
      '/ready': { get: { ...open('Readiness', 'application/json'), responses: { '200': { description: 'ready' }, '503': { description: 'a dependency is down or the server is draining' } } } },
      '/metrics': { get: open('Prometheus metrics', 'text/plain') },
      '/openapi.json': { get: open('This document', 'application/json') },
    },
    components: {
      schemas: { ...schemas, Error: ERROR_SCHEMA },
      securitySchemes: {
        bearer: { type: 'http', scheme: 'bearer', bearerFormat: 'JWT', description: 'claims sub, role (driver|dispatcher|requester|admin), exp required' },
        apiKey: { type: 'apiKey', in: 'header', name: 'X-API-Key', description: 'machine clients; keys are stored hashed, each with a role' },
      },
      responses: { Error: { description: 'Error', content: { 'application/json': { schema: { $ref: '#/components/schemas/Error' } } } } },
    },
  };
}

const WEBHOOK_REPLY = {
  type: 'object',
  properties: { id: { type: 'string' }, url: { type: 'string' }, events: { type: 'array', items: { type: 'string' } }, createdAt: { type: 'integer' }, updatedAt: { type: 'integer' } },
};

const DELIVERIES_REPLY = {
  type: 'object',
  properties: {
    items: { type: 'array', items: { type: 'object', properties: {
      seq: { type: 'integer' }, type: { type: 'string' }, attempts: { type: 'integer' }, lastStatus: { type: 'integer' }, lastError: { type: 'string' },
      nextAttemptAt: { type: 'integer' }, deliveredAt: { type: 'integer' }, updatedAt: { type: 'integer' },
    } } },
    next: { type: 'string' },
  },
};

const BATCH_REPLY = {
  type: 'object',
  properties: { accepted: { type: 'integer' }, rejected: { type: 'array', items: { type: 'object', properties: { index: { type: 'integer' }, code: { type: 'string' } } } } },
};

const PAGE_REPLY = {
  type: 'object',
  required: ['items'],
  properties: { items: { type: 'array' }, next: { type: 'string', description: 'opaque cursor of the next page; absent on the last page' } },
};

function op(summary: string, o: { body?: SchemaName; query?: SchemaName; id?: boolean; ok: number; reply?: Json; idempotent?: boolean }): Json {
  const parameters: Json[] = [];
  if (o.id) parameters.push({ name: 'id', in: 'path', required: true, schema: { $ref: '#/components/schemas/id' } });
  if (o.idempotent) parameters.push({ name: 'Idempotency-Key', in: 'header', required: false, schema: { type: 'string', maxLength: 128 } });
  if (o.query) {
    const schema = SCHEMAS[o.query] as unknown as { required?: readonly string[]; properties: Record<string, unknown> };
    for (const [name, s] of Object.entries(schema.properties)) {
      parameters.push({ name, in: 'query', required: schema.required?.includes(name) ?? false, schema: structuredClone(s) });
    }
  }
  const ref = (name: SchemaName) => ({ schema: { $ref: `#/components/schemas/${name}` } });
  const okResponse = o.ok === 204 ? { description: 'No Content' } : { description: 'OK', content: { 'application/json': o.reply ? { schema: o.reply } : {}, 'application/msgpack': {} } };
  return {
    summary,
    ...(parameters.length > 0 ? { parameters } : {}),
    ...(o.body ? { requestBody: { required: true, content: { 'application/json': ref(o.body), 'application/msgpack': ref(o.body) } } } : {}),
    responses: { [String(o.ok)]: okResponse, ...errorResponses() },
  };
}

function open(summary: string, type: string): Json {
  return { summary, security: [], responses: { '200': { description: 'OK', content: { [type]: {} } } } };
}

function errorResponses(): Json {
  const e = { $ref: '#/components/responses/Error' };
  return { '400': e, '401': e, '403': e, '404': e, '409': e, '413': e, '422': e, '429': e, '500': e, '503': e, '504': e };
}
