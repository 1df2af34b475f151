/**
 * The least a client needs to hold a WebSocket (RFC 6455) over a raw `net` socket: the upgrade request, the
 * server's answer, masked client frames and a reader for the server's frames. Cheaper than `ws` per socket
 * (no per-connection objects beyond the net.Socket), which matters when one process holds 25,000 of them.
 *
 *   GET /v1/stream?access_token=… Upgrade ─► readUpgradeReply: 101 (Sec-WebSocket-Accept checked) | status + error code
 *   server bytes ─► FrameReader.push ─► { opcode, payload } (ping → encodeFrame(PONG, payload) back)
 */
import { createHash, randomBytes } from 'node:crypto';

export const OP_TEXT = 0x1;
export const OP_CLOSE = 0x8;
export const OP_PING = 0x9;
export const OP_PONG = 0xa;

/** A frame from the server. */
export interface ServerFrame {
  opcode: number;
  payload: Buffer;
}

/** What the server answered to an upgrade request. */
export type UpgradeReply =
  | { done: false }
  | { done: true; ok: true; rest: Buffer }
  | { done: true; ok: false; reason: string };

const GUID = '258EAFA5-E914-47DA-95CA-C5AB0DC85B11';
// an answer whose headers have not ended by now is not an HTTP server's
const MAX_HEADER_BYTES = 16 * 1024;

/** The `Sec-WebSocket-Accept` a server must answer to `key` (RFC 6455 §4.2.2). */
export function acceptFor(key: string): string {
  return createHash('sha1').update(key + GUID).digest('base64');
}

/** A fresh `Sec-WebSocket-Key`. */
export function newKey(): string {
  return randomBytes(16).toString('base64');
}

/** The HTTP/1.1 upgrade request for `path` (with its query) on `host`. */
export function upgradeRequest(path: string, host: string, key: string): string {
  return `GET ${path} HTTP/1.1\r\nHost: ${host}\r\nUpgrade: websocket\r\nConnection: Upgrade\r\nSec-WebSocket-Key: ${key}\r\nSec-WebSocket-Version: 13\r\n\r\n`;
}

/**
 * Reads the server's answer from what arrived so far: not done until the headers end; ok on 101 with the right
 * accept value (any bytes after the headers are already frames); otherwise the status and the body's error code.
 */
export function readUpgradeReply(received: Buffer, expectedAccept: string): UpgradeReply {
  const end = received.indexOf('\r\n\r\n');
  if (end < 0) return received.length > MAX_HEADER_BYTES ? { done: true, ok: false, reason: 'headers too long' } : { done: false };
  const head = received.subarray(0, end).toString('latin1');
  const status = /^HTTP\/1\.1 (\d{3})/.exec(head)?.[1];
  if (status === undefined) return { done: true, ok: false, reason: 'not an HTTP answer' };
  if (status !== '101') {
    const code = /"code"\s*:\s*"([A-Z_]+)"/.exec(received.subarray(end + 4).toString('utf8'))?.[1];
    return { done: true, ok: false, reason: code === undefined ? `HTTP ${status}` : `HTTP ${status} ${code}` };
  }
  const accept = /^sec-websocket-accept:\s*(\S+)\s*$/im.exec(head)?.[1];
  if (accept !== expectedAccept) return { done: true, ok: false, reason: 'bad Sec-WebSocket-Accept' };
  return { done: true, ok: true, rest: received.subarray(end + 4) };
}

/** One final, masked client frame (clients must mask, RFC 6455 §5.3). */
export function encodeFrame(opcode: number, payload: Buffer, mask: Buffer = randomBytes(4)): Buffer {
  if (mask.length !== 4) throw new Error('encodeFrame: the mask is exactly 4 bytes');
  const len = payload.length;
  const lenBytes = len < 126 ? 0 : len < 65_536 ? 2 : 8;
  const head = 2 + lenBytes;
  const out = Buffer.allocUnsafe(head + 4 + len);
  out[0] = 0x80 | opcode;
  if (lenBytes === 0) out[1] = 0x80 | len;
  else if (lenBytes === 2) {
    out[1] = 0x80 | 126;
    out.writeUInt16BE(len, 2);
  } else {
    out[1] = 0x80 | 127;
    out.writeBigUInt64BE(BigInt(len), 2);
  }
  mask.copy(out, head);
  for (let i = 0; i < len; i++) out[head + 4 + i] = payload[i] ^ mask[i & 3];
  return out;
}

/** The close code of a close frame's payload, or undefined when it carries none. */
export function closeCode(payload: Buffer): number | undefined {
  return payload.length >= 2 ? payload.readUInt16BE(0) : undefined;
}

/** Cuts a stream of server bytes into frames (unmasked, as servers send them); keeps a partial frame for later. */
export class FrameReader {
  private pending: Buffer = Buffer.alloc(0);

  /** Adds bytes; returns every frame they complete. */
  push(chunk: Buffer): ServerFrame[] {
    let buf = this.pending.length === 0 ? chunk : Buffer.concat([this.pending, chunk]);
    const frames: ServerFrame[] = [];
    for (;;) {
      const frame = nextFrame(buf);
      if (frame === undefined) break;
      frames.push({ opcode: frame.opcode, payload: frame.payload });
      buf = buf.subarray(frame.size);
    }
    // copied so a long-lived partial frame does not pin the whole chunk it came in
    this.pending = buf.length === 0 ? Buffer.alloc(0) : Buffer.from(buf);
    return frames;
  }
}

function nextFrame(buf: Buffer): (ServerFrame & { size: number }) | undefined {
  if (buf.length < 2) return undefined;
  const opcode = buf[0] & 0x0f;
  const masked = (buf[1] & 0x80) !== 0;
  let len = buf[1] & 0x7f;
  let at = 2;
  if (len === 126) {
    if (buf.length < 4) return undefined;
    len = buf.readUInt16BE(2);
    at = 4;
  } else if (len === 127) {
    if (buf.length < 10) return undefined;
    len = Number(buf.readBigUInt64BE(2));
    at = 10;
  }
  const maskAt = at;
  if (masked) at += 4;
  if (buf.length < at + len) return undefined;
  let payload = buf.subarray(at, at + len);
  if (masked) {
    payload = Buffer.from(payload);
    for (let i = 0; i < len; i++) payload[i] ^= buf[maskAt + (i & 3)];
  }
  return { opcode, payload, size: at + len };
}
