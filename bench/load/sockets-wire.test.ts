import { describe, expect, it } from 'vitest';
import { FrameReader, OP_CLOSE, OP_PING, OP_PONG, OP_TEXT, acceptFor, closeCode, encodeFrame, readUpgradeReply, upgradeRequest } from './sockets-wire.js';

// RFC 6455 §1.3's own example
const KEY = 'dGhlIHNhbXBsZSBub25jZQ==';
const ACCEPT = 's3pPLMBiTxaQ9kYGzzhZRbK+xOo=';

describe('the upgrade', () => {
  it('computes the accept value of RFC 6455 §1.3', () => {
    expect(acceptFor(KEY)).toBe(ACCEPT);
  });

  it('asks for a version 13 upgrade of the path on the host', () => {
    expect(upgradeRequest('/v1/stream?access_token=a.b.c', '127.0.0.1:8080', KEY)).toBe(
      `GET /v1/stream?access_token=a.b.c HTTP/1.1\r\nHost: 127.0.0.1:8080\r\nUpgrade: websocket\r\nConnection: Upgrade\r\nSec-WebSocket-Key: ${KEY}\r\nSec-WebSocket-Version: 13\r\n\r\n`,
    );
  });

  it('waits until the headers end', () => {
    expect(readUpgradeReply(Buffer.from('HTTP/1.1 101 Switching Protocols\r\nUpgrade: websocket\r\n'), ACCEPT)).toEqual({ done: false });
  });

  it('accepts a 101 with the right accept value and keeps the bytes after the headers', () => {
    const reply = readUpgradeReply(Buffer.from(`HTTP/1.1 101 Switching Protocols\r\nUpgrade: websocket\r\nSec-WebSocket-Accept: ${ACCEPT}\r\n\r\n\x81\x02hi`, 'latin1'), ACCEPT);
    expect(reply.done && reply.ok && reply.rest.toString('latin1')).toBe('\x81\x02hi');
  });

  it('refuses a 101 with another accept value', () => {
    expect(readUpgradeReply(Buffer.from('HTTP/1.1 101 Switching Protocols\r\nSec-WebSocket-Accept: nope\r\n\r\n'), ACCEPT)).toEqual({ done: true, ok: false, reason: 'bad Sec-WebSocket-Accept' });
  });

  it('names the status and the error code of a refusal', () => {
    const body = '{"error":{"code":"E_TOO_MANY_SOCKETS","message":"too many open sockets on this instance"}}';
    expect(readUpgradeReply(Buffer.from(`HTTP/1.1 503 Service Unavailable\r\nContent-Type: application/json\r\n\r\n${body}`), ACCEPT)).toEqual({ done: true, ok: false, reason: 'HTTP 503 E_TOO_MANY_SOCKETS' });
    expect(readUpgradeReply(Buffer.from('HTTP/1.1 401 Unauthorized\r\n\r\n'), ACCEPT)).toEqual({ done: true, ok: false, reason: 'HTTP 401' });
  });
});

describe('client frames', () => {
  it('masks a short text frame as RFC 6455 §5.7 shows', () => {
    const frame = encodeFrame(OP_TEXT, Buffer.from('Hello'), Buffer.from([0x37, 0xfa, 0x21, 0x3d]));
    expect([...frame]).toEqual([0x81, 0x85, 0x37, 0xfa, 0x21, 0x3d, 0x7f, 0x9f, 0x4d, 0x51, 0x58]);
  });

  it('uses the 16-bit and 64-bit length forms and reads back what it wrote', () => {
    for (const len of [125, 126, 65_535, 65_536]) {
      const payload = Buffer.alloc(len, 7);
      const frames = new FrameReader().push(encodeFrame(OP_PONG, payload));
      expect(frames).toHaveLength(1);
      expect(frames[0].opcode).toBe(OP_PONG);
      expect(frames[0].payload.equals(payload)).toBe(true);
    }
  });

  it('refuses a mask that is not 4 bytes', () => {
    expect(() => encodeFrame(OP_TEXT, Buffer.alloc(1), Buffer.alloc(3))).toThrow(/exactly 4 bytes/);
  });
});

describe('FrameReader', () => {
  it('reads unmasked server frames split across chunks at any byte', () => {
    const text = Buffer.from([0x81, 0x03, ...Buffer.from('abc')]);
    const ping = Buffer.from([0x89, 0x00]);
    const close = Buffer.from([0x88, 0x02, 0x03, 0xe9]);
    const all = Buffer.concat([text, ping, close]);
    for (let cut = 0; cut <= all.length; cut++) {
      const reader = new FrameReader();
      const frames = [...reader.push(all.subarray(0, cut)), ...reader.push(all.subarray(cut))];
      expect(frames.map((f) => [f.opcode, f.payload.toString('latin1')])).toEqual([
        [OP_TEXT, 'abc'],
        [OP_PING, ''],
        [OP_CLOSE, '\x03\xe9'],
      ]);
    }
  });

  it('reads the close code of a close frame', () => {
    expect(closeCode(Buffer.from([0x03, 0xe9, 0x61]))).toBe(1001);
    expect(closeCode(Buffer.alloc(0))).toBeUndefined();
  });
});
