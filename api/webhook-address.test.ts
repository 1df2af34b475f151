import { describe, expect, it } from 'vitest';
import { checkWebhookUrl, isPrivateAddress } from './webhook-address.js';

describe('isPrivateAddress', () => {
  it.each([
    '127.0.0.1', '127.255.0.9', '10.1.2.3', '172.16.0.1', '172.31.255.255', '192.168.1.1', '169.254.169.254', '0.0.0.0', '100.64.0.1',
    '224.0.0.1', '255.255.255.255', '::1', '::', 'fe80::1', 'fc00::1', 'fd12:3456::1', 'ff02::1', '::ffff:127.0.0.1', '::ffff:7f00:1',
    '::ffff:10.0.0.1', '64:ff9b::a00:1', 'not-an-address',
    // special-purpose ranges a hostile-client pass found allowed: local-use NAT64, 6to4, Teredo, discard, ORCHID, documentation
    '64:ff9b:1::a00:1', '2002:7f00:1::', '2001::1', '100::1', '2001:10::1', '2001:db8::1', '192.0.2.1', '198.51.100.7', '203.0.113.9', '192.88.99.1',
  ])('refuses %s', (a) => expect(isPrivateAddress(a)).toBe(true));

  it.each(['8.8.8.8', '1.1.1.1', '172.32.0.1', '192.169.0.1', '2001:4860:4860::8888', '::ffff:8.8.8.8', '2606:4700::1111'])('allows %s', (a) => expect(isPrivateAddress(a)).toBe(false));
});

describe('checkWebhookUrl', () => {
  const resolver = (map: Record<string, string[]>) => async (host: string) => map[host] ?? [];

  it('refuses anything but http(s), and URLs carrying credentials', async () => {
    await expect(checkWebhookUrl('ftp://example.com/x', false, resolver({}))).rejects.toMatchObject({ status: 400, code: 'E_WEBHOOK_URL' });
    await expect(checkWebhookUrl('example.com/x', false, resolver({}))).rejects.toMatchObject({ code: 'E_WEBHOOK_URL' });
    await expect(checkWebhookUrl('https://u:p@example.com/', false, resolver({ 'example.com': ['8.8.8.8'] }))).rejects.toMatchObject({ code: 'E_WEBHOOK_URL' });
  });

  it('refuses a host with any private address behind it, and one that does not resolve', async () => {
    const r = resolver({ 'mixed.test': ['8.8.8.8', '10.0.0.5'], 'public.test': ['8.8.8.8', '2001:4860::1'], '::1': ['::1'] });
    await expect(checkWebhookUrl('https://mixed.test/hook', false, r)).rejects.toMatchObject({ status: 400, code: 'E_WEBHOOK_URL_PRIVATE' });
    await expect(checkWebhookUrl('http://[::1]:8080/', false, r)).rejects.toMatchObject({ code: 'E_WEBHOOK_URL_PRIVATE' });
    await expect(checkWebhookUrl('https://nowhere.test/', false, r)).rejects.toMatchObject({ code: 'E_WEBHOOK_URL_UNRESOLVED' });
    expect((await checkWebhookUrl('https://public.test/hook', false, r)).href).toBe('https://public.test/hook');
  });

  it('resolves for real: localhost and decimal-encoded loopback are refused, and allowed with allowPrivate', async () => {
    await expect(checkWebhookUrl('http://localhost:9/', false)).rejects.toMatchObject({ code: 'E_WEBHOOK_URL_PRIVATE' });
    await expect(checkWebhookUrl('http://2130706433/', false)).rejects.toMatchObject({ code: 'E_WEBHOOK_URL_PRIVATE' });
    await expect(checkWebhookUrl('http://[::ffff:127.0.0.1]/', false)).rejects.toMatchObject({ code: 'E_WEBHOOK_URL_PRIVATE' });
    expect((await checkWebhookUrl('http://localhost:9/', true)).port).toBe('9');
  });
});
