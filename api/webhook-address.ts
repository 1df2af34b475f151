/**
 * Where a webhook may point: http(s) URLs whose host resolves only to public addresses (PRODUCT §4), unless
 * WEBHOOK_ALLOW_PRIVATE=1. Checked when the webhook is PUT and again on every connection a delivery makes —
 * through `pinnedLookup`, which hands the socket the very address it checked, so a DNS answer that changes
 * between the check and the connect (rebinding) cannot reach an internal host.
 *
 *   PUT ─► checkWebhookUrl(url) ─► URL parse (http/https) ─► dns.lookup(all) ─► every address public? ─► ok
 *   delivery ─► http.request({ lookup: pinnedLookup(allowPrivate) }) ─► dns.lookup ─► refuse, or connect to it
 */
import { lookup as dnsLookup, type LookupAddress } from 'node:dns';
import { promises as dns } from 'node:dns';
import { BlockList, isIP } from 'node:net';
import { ApiError } from './api-error.js';

/** Blocks of addresses a webhook must not reach: this host, its networks, and addresses that are no single host. */
const BLOCKED = new BlockList();
for (const [net, prefix] of [
  ['0.0.0.0', 8], // "this network", incl. the unspecified address
  ['10.0.0.0', 8], // private
  ['100.64.0.0', 10], // carrier-grade NAT (shared)
  ['127.0.0.0', 8], // loopback
  ['169.254.0.0', 16], // link-local (cloud metadata lives here)
  ['172.16.0.0', 12], // private
  ['192.0.0.0', 24], // IETF protocol assignments
  ['192.168.0.0', 16], // private
  ['192.0.2.0', 24], // documentation (TEST-NET-1)
  ['192.88.99.0', 24], // 6to4 relay anycast (deprecated)
  ['198.18.0.0', 15], // benchmarking
  ['198.51.100.0', 24], // documentation (TEST-NET-2)
  ['203.0.113.0', 24], // documentation (TEST-NET-3)
  ['224.0.0.0', 4], // multicast
  ['240.0.0.0', 4], // reserved, broadcast
] as const) BLOCKED.addSubnet(net, prefix, 'ipv4');
for (const [net, prefix] of [
  ['::', 128], // unspecified
  ['::1', 128], // loopback
  ['::', 96], // IPv4-compatible (deprecated)
  ['64:ff9b::', 96], // NAT64: reaches an IPv4 address through a gateway (checked below as that address)
  ['100::', 64], // discard-only
  ['2001::', 32], // Teredo: tunnels to an IPv4 address
  ['2001:10::', 28], // ORCHID
  ['2001:20::', 28], // ORCHIDv2
  ['2001:db8::', 32], // documentation
  ['2002::', 16], // 6to4: tunnels to an IPv4 address
  ['fc00::', 7], // unique-local
  ['fe80::', 10], // link-local
  ['fec0::', 10], // site-local (deprecated)
  ['ff00::', 8], // multicast
] as const) BLOCKED.addSubnet(net, prefix, 'ipv6');

const GLOBAL_UNICAST = new BlockList();
GLOBAL_UNICAST.addSubnet('2000::', 3, 'ipv6');

/** True when `address` (IPv4 or IPv6 text) is loopback, link-local, private, unique-local, unspecified, multicast or reserved. */
export function isPrivateAddress(address: string): boolean {
  const family = isIP(address);
  if (family === 4) return BLOCKED.check(address, 'ipv4');
  if (family !== 6) return true; // not an address at all: never connect to it
  const v4 = embeddedIPv4(address);
  if (v4 !== undefined) return BLOCKED.check(v4, 'ipv4');
  // only global unicast (2000::/3) is any single public host; everything else (e.g. the local-use NAT64 prefix
  // 64:ff9b:1::/48, which reaches IPv4 addresses of the operator's choosing) is refused
  return !GLOBAL_UNICAST.check(address, 'ipv6') || BLOCKED.check(address, 'ipv6');
}

/**
 * Checks a webhook URL at PUT time: http(s), a host, and (unless allowPrivate) only public addresses behind it.
 * Throws ApiError 400 E_WEBHOOK_URL (malformed), E_WEBHOOK_URL_UNRESOLVED (no address) or E_WEBHOOK_URL_PRIVATE.
 */
export async function checkWebhookUrl(raw: string, allowPrivate: boolean, resolve: (host: string) => Promise<string[]> = resolveAll): Promise<URL> {
  let url: URL;
  try {
    url = new URL(raw);
  } catch {
    throw new ApiError(400, 'E_WEBHOOK_URL', 'url must be an absolute http:// or https:// URL');
  }
  if (url.protocol !== 'http:' && url.protocol !== 'https:') throw new ApiError(400, 'E_WEBHOOK_URL', `url must be http:// or https://, got ${url.protocol}//`);
  if (url.port === '0') throw new ApiError(400, 'E_WEBHOOK_URL', 'url port 0 reaches no receiver');
  if (url.username !== '' || url.password !== '') throw new ApiError(400, 'E_WEBHOOK_URL', 'url must not carry credentials: the signature authenticates deliveries');
  if (allowPrivate) return url;
  let addresses: string[];
  try {
    addresses = await resolve(hostOf(url));
  } catch {
    addresses = [];
  }
  if (addresses.length === 0) throw new ApiError(400, 'E_WEBHOOK_URL_UNRESOLVED', `the host '${url.hostname}' does not resolve`);
  const bad = addresses.find(isPrivateAddress);
  if (bad !== undefined) {
    throw new ApiError(400, 'E_WEBHOOK_URL_PRIVATE', `the host '${url.hostname}' resolves to ${bad}, a loopback, link-local, private or reserved address (set WEBHOOK_ALLOW_PRIVATE=1 to allow)`);
  }
  return url;
}

/** The host to resolve: IPv6 literals lose their brackets. */
export function hostOf(url: URL): string {
  return url.hostname.startsWith('[') ? url.hostname.slice(1, -1) : url.hostname;
}

/** A `lookup` for http.request that refuses private addresses (unless allowed) and connects only to what it checked. */
export function pinnedLookup(allowPrivate: boolean): typeof dnsLookup {
  const lookup = (hostname: string, options: unknown, callback: (err: NodeJS.ErrnoException | null, address: string | LookupAddress[], family?: number) => void): void => {
    dnsLookup(hostname, { all: true }, (err, addresses) => {
      if (err) return callback(err, '', 0);
      const usable = allowPrivate ? addresses : addresses.filter((a) => !isPrivateAddress(a.address));
      if (usable.length === 0) {
        const refused = Object.assign(new Error(`${hostname} resolves to a private address (${addresses[0]?.address ?? 'none'}); refused`), { code: 'E_WEBHOOK_URL_PRIVATE' });
        return callback(refused, '', 0);
      }
      if ((options as { all?: boolean } | undefined)?.all) return callback(null, usable);
      callback(null, usable[0].address, usable[0].family);
    });
  };
  return lookup as unknown as typeof dnsLookup;
}

async function resolveAll(host: string): Promise<string[]> {
  const found = await dns.lookup(host, { all: true, verbatim: true });
  return found.map((a) => a.address);
}

/** The IPv4 address inside an IPv4-mapped (::ffff:a.b.c.d) or NAT64 (64:ff9b::a.b.c.d) IPv6 address. */
function embeddedIPv4(address: string): string | undefined {
  const groups = expandIPv6(address);
  if (groups === undefined) return undefined;
  const mapped = groups.slice(0, 5).every((g) => g === 0) && groups[5] === 0xffff;
  const nat64 = groups[0] === 0x64 && groups[1] === 0xff9b && groups.slice(2, 6).every((g) => g === 0);
  if (!mapped && !nat64) return undefined;
  return `${groups[6] >> 8}.${groups[6] & 255}.${groups[7] >> 8}.${groups[7] & 255}`;
}

/** Eight 16-bit groups of an IPv6 address (a trailing dotted IPv4 part included), or undefined. */
function expandIPv6(address: string): number[] | undefined {
  let text = address.toLowerCase().split('%')[0];
  const dotted = /(\d+\.\d+\.\d+\.\d+)$/.exec(text);
  if (dotted) {
    const [a, b, c, d] = dotted[1].split('.').map(Number);
    text = text.slice(0, -dotted[1].length) + ((a << 8) | b).toString(16) + ':' + ((c << 8) | d).toString(16);
  }
  const [head, tail] = text.includes('::') ? text.split('::') : [text, undefined];
  const left = head === '' ? [] : head.split(':');
  const right = tail === undefined || tail === '' ? [] : tail.split(':');
  const fill = tail === undefined ? 0 : 8 - left.length - right.length;
  const parts = [...left, ...new Array<string>(Math.max(0, fill)).fill('0'), ...right];
  if (parts.length !== 8) return undefined;
  const groups = parts.map((p) => parseInt(p, 16));
  return groups.some((g) => Number.isNaN(g)) ? undefined : groups;
}
