import { request } from 'node:http';
import uWS from '@trufflesuite/uws-js-unofficial';
import { Packr } from 'msgpackr';
import { afterAll, beforeAll, describe, expect, test } from 'vitest';
import { ApiError } from './api-error.js';
import { JsonBytes, decodeBody, encodeReply, isAborted, jsonNestsDeeper, readBody, sendError, sendReply } from './http-body.js';

const LIMIT = 1024;
const packr = new Packr({ useRecords: false });

function codeOf(fn: () => unknown): string {
  try {
    fn();
  } catch (err) {
    return err instanceof ApiError ? `${err.status} ${err.code}` : `not an ApiError: ${String(err)}`;
  }
  return 'no error';
}

describe('decodeBody', () => {
  test('JSON bodies decode to values', () => {
    expect(decodeBody(Buffer.from('{"lat":1,"lng":[2,3]}'), 'application/json')).toEqual({ lat: 1, lng: [2, 3] });
    expect(decodeBody(Buffer.from('{"a":1}'), undefined)).toEqual({ a: 1 });
  });

  test('malformed or empty JSON is 400 E_BAD_JSON', () => {
    expect(codeOf(() => decodeBody(Buffer.from('{"lat":'), 'application/json'))).toBe('400 E_BAD_JSON');
    expect(codeOf(() => decodeBody(Buffer.alloc(0), 'application/json'))).toBe('400 E_BAD_JSON');
  });

  test('__proto__, constructor and prototype keys are refused at any depth in JSON', () => {
    for (const body of ['{"__proto__":{"admin":true}}', '{"a":[{"b":{"constructor":{"prototype":{}}}}]}', '{"x":{"prototype":1}}']) {
      expect(codeOf(() => decodeBody(Buffer.from(body), 'application/json')), body).toBe('400 E_BAD_JSON');
    }
    expect(({} as Record<string, unknown>).admin).toBeUndefined();
  });

  test('MessagePack bodies decode when the content type says so, with the same key rules', () => {
    expect(decodeBody(Buffer.from(packr.pack({ t: 'locs', items: [['c1', 1, 2, 3]] })), 'application/msgpack')).toEqual({ t: 'locs', items: [['c1', 1, 2, 3]] });
    // a map whose only key is "__proto__" (fixmap 1, fixstr 9): built by hand since JS objects cannot hold it as data
    const proto = Buffer.concat([Buffer.from([0x81, 0xa9]), Buffer.from('__proto__'), Buffer.from([0x81, 0xa1, 0x78, 0x01])]);
    expect(codeOf(() => decodeBody(proto, 'application/msgpack'))).toBe('400 E_BAD_JSON');
    expect(codeOf(() => decodeBody(Buffer.from(packr.pack({ a: { constructor: 1 } })), 'application/msgpack; charset=binary'))).toBe('400 E_BAD_JSON');
    expect(codeOf(() => decodeBody(Buffer.from([0xc1]), 'application/msgpack'))).toBe('400 E_BAD_JSON');
    expect(codeOf(() => decodeBody(Buffer.from(packr.pack({ when: new Date(0) })), 'application/msgpack'))).toBe('400 E_BAD_JSON');
    expect(codeOf(() => decodeBody(Buffer.from([0xc4, 0x01, 0x00]), 'application/msgpack'))).toBe('400 E_BAD_JSON');
  });

  test('deeply nested bodies are refused without exhausting the stack', () => {
    const deep = '['.repeat(5000) + ']'.repeat(5000);
    expect(codeOf(() => decodeBody(Buffer.from(deep), 'application/json'))).toBe('400 E_BAD_JSON');
  });

  test('JSON nesting is counted before parsing, and brackets inside strings do not count', () => {
    expect(jsonNestsDeeper(Buffer.from('['.repeat(33) + ']'.repeat(33)), 32)).toBe(true);
    expect(jsonNestsDeeper(Buffer.from('['.repeat(32) + ']'.repeat(32)), 32)).toBe(false);
    expect(jsonNestsDeeper(Buffer.from(`{"s":"${'['.repeat(100)}\\"","t":[1]}`), 2)).toBe(false);
    expect(jsonNestsDeeper(Buffer.from('[{"a":[{"b":[]}]}]'), 4)).toBe(true);
  });

  test('strings no database can store are refused: NUL and unpaired surrogates, in values and keys, JSON and MessagePack', () => {
    for (const body of ['{"name":"a\\u0000b"}', '{"name":"\\ud800"}', '{"name":"x\\udc00"}', '{"a\\u0000":1}', '{"list":["ok","\\udbff"]}']) {
      expect(codeOf(() => decodeBody(Buffer.from(body), 'application/json')), body).toBe('400 E_BAD_JSON');
    }
    expect(decodeBody(Buffer.from('{"name":"\\ud83d\\ude91 ambulance"}'), 'application/json')).toEqual({ name: '\u{1F691} ambulance' });
    expect(codeOf(() => decodeBody(Buffer.from(packr.pack({ reference: 'a\u0000' })), 'application/msgpack'))).toBe('400 E_BAD_JSON');
  });
});

describe('encodeReply', () => {
  test('replies are JSON unless Accept asks for MessagePack', () => {
    expect(encodeReply({ ok: 1 }, undefined)).toEqual({ body: '{"ok":1}', contentType: 'application/json; charset=utf-8' });
    expect(encodeReply({ ok: 1 }, 'application/json, */*')).toEqual({ body: '{"ok":1}', contentType: 'application/json; charset=utf-8' });
    const packed = encodeReply({ ok: 1 }, 'application/msgpack');
    expect(packed.contentType).toBe('application/msgpack');
    expect(packr.unpack(packed.body as Uint8Array)).toEqual({ ok: 1 });
  });

  test('bytes a route wrote as JSON go out as they are, or as MessagePack of the value they encode', () => {
    const bytes = new TextEncoder().encode('{"results":[{"id":"ü1","n":2}]}');
    expect(encodeReply(new JsonBytes(bytes), undefined)).toEqual({ body: bytes, contentType: 'application/json; charset=utf-8' });
    const packed = encodeReply(new JsonBytes(bytes), 'application/x-msgpack');
    expect(packr.unpack(packed.body as Uint8Array)).toEqual({ results: [{ id: 'ü1', n: 2 }] });
  });
});

describe('readBody and sendReply on a real uWS server', () => {
  let listenSocket: uWS.us_listen_socket | undefined;
  let port = 0;
  let served = 0;
  const aborts: boolean[] = [];

  beforeAll(async () => {
    const app = uWS.App();
    app.post('/echo', (res, req) => {
      const contentType = req.getHeader('content-type');
      const accept = req.getHeader('accept');
      readBody(
        res,
        LIMIT,
        (body) => {
          served++;
          try {
            sendReply(res, 200, { echo: decodeBody(body, contentType), bytes: body.length }, accept, { 'x-served': String(served) });
          } catch (err) {
            sendError(res, err, accept);
          }
        },
        (err) => sendError(res, err, accept),
      );
    });
    app.post('/slow', (res) => {
      readBody(
        res,
        LIMIT * 1024,
        () => setTimeout(() => {
          aborts.push(isAborted(res));
          sendReply(res, 200, { late: true }, undefined);
        }, 50),
        () => undefined,
      );
      // record whether the abort was seen once the client has gone
      setTimeout(() => aborts.push(isAborted(res)), 300);
    });
    app.get('/empty', (res) => sendReply(res, 204, undefined, undefined));
    port = await new Promise<number>((resolve, reject) =>
      app.listen('127.0.0.1', 0, (token) => {
        if (!token) return reject(new Error('listen failed'));
        listenSocket = token;
        resolve(uWS.us_socket_local_port(token));
      }),
    );
  });

  afterAll(() => {
    if (listenSocket) uWS.us_listen_socket_close(listenSocket);
  });

  const url = (path: string) => `http://127.0.0.1:${port}${path}`;

  test('a body under the limit is decoded and echoed with the headers given', async () => {
    const res = await fetch(url('/echo'), { method: 'POST', headers: { 'content-type': 'application/json' }, body: JSON.stringify({ lat: 52.5, note: 'x'.repeat(500) }) });
    expect(res.status).toBe(200);
    expect(res.headers.get('content-type')).toBe('application/json; charset=utf-8');
    expect(res.headers.get('x-served')).toMatch(/^\d+$/);
    expect(await res.json()).toEqual({ echo: { lat: 52.5, note: 'x'.repeat(500) }, bytes: 522 });
  });

  test('a body sent in many chunks is reassembled intact', async () => {
    const parts = Array.from({ length: 20 }, (_, i) => `"k${i}":${i}`);
    const stream = new ReadableStream<Uint8Array>({
      async start(controller) {
        controller.enqueue(new TextEncoder().encode('{'));
        for (let i = 0; i < parts.length; i++) {
          controller.enqueue(new TextEncoder().encode((i ? ',' : '') + parts[i]));
          await new Promise((r) => setTimeout(r, 2));
        }
        controller.enqueue(new TextEncoder().encode('}'));
        controller.close();
      },
    });
    const res = await fetch(url('/echo'), { method: 'POST', body: stream, duplex: 'half' } as RequestInit);
    expect(res.status).toBe(200);
    const { echo } = (await res.json()) as { echo: Record<string, number> };
    expect(Object.keys(echo)).toHaveLength(20);
    expect(echo.k19).toBe(19);
  });

  test('MessagePack in, MessagePack out when Accept asks for it', async () => {
    const res = await fetch(url('/echo'), { method: 'POST', headers: { 'content-type': 'application/msgpack', accept: 'application/msgpack' }, body: packr.pack({ t: 'loc', lat: 1 }) });
    expect(res.headers.get('content-type')).toBe('application/msgpack');
    expect(packr.unpack(new Uint8Array(await res.arrayBuffer()))).toEqual({ echo: { t: 'loc', lat: 1 }, bytes: 14 });
  });

  test('a body over the limit is read to its end and answered 413 the client can read, and the server keeps serving', async () => {
    for (const size of [LIMIT * 200, 3 * 1024 * 1024]) {
      const res = await fetch(url('/echo'), { method: 'POST', body: JSON.stringify({ big: 'y'.repeat(size) }) });
      expect(res.status).toBe(413);
      const body = (await res.json()) as { error: { code: string; message: string } };
      expect(body.error.code).toBe('E_BODY_TOO_LARGE');
      expect(body.error.message).toMatch(new RegExp(`^body exceeds ${LIMIT} bytes`));
    }
    const again = await fetch(url('/echo'), { method: 'POST', body: '{"ok":true}' });
    expect(again.status).toBe(200);
    expect(await again.json()).toEqual({ echo: { ok: true }, bytes: 11 });
  });

  test('a small body just over the limit is answered 413', async () => {
    const res = await fetch(url('/echo'), { method: 'POST', body: JSON.stringify({ s: 'z'.repeat(LIMIT) }) });
    expect(res.status).toBe(413);
  });

  test('a malformed body is answered 400 E_BAD_JSON', async () => {
    const res = await fetch(url('/echo'), { method: 'POST', headers: { 'content-type': 'application/json' }, body: '{"__proto__":{}}' });
    expect(res.status).toBe(400);
    expect(((await res.json()) as { error: { code: string } }).error.code).toBe('E_BAD_JSON');
  });

  test('a client aborting mid-body does not crash the server, and a late reply is skipped', async () => {
    await new Promise<void>((resolve) => {
      const req = request({ host: '127.0.0.1', port, method: 'POST', path: '/slow', headers: { 'content-length': '100000' } });
      req.on('error', () => resolve());
      req.write('{"partial":');
      setTimeout(() => {
        req.destroy();
        resolve();
      }, 30);
    });
    await new Promise((r) => setTimeout(r, 400));
    expect(aborts).toContain(true);
    const after = await fetch(url('/echo'), { method: 'POST', body: '[1]' });
    expect(after.status).toBe(200);
  });

  test('a client leaving before an asynchronous reply does not crash the server', async () => {
    const controller = new AbortController();
    const pending = fetch(url('/slow'), { method: 'POST', body: '{}', signal: controller.signal }).catch(() => 'aborted');
    setTimeout(() => controller.abort(), 10);
    expect(await pending).toBe('aborted');
    await new Promise((r) => setTimeout(r, 100));
    expect((await fetch(url('/empty'))).status).toBe(204);
  });
});
