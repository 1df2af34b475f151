import { describe, expect, it } from 'vitest';
import { envelopeOf, signWebhook } from './webhook-deliverer.js';
import { verifySignature } from './webhook-receiver.js';

describe('webhook signatures', () => {
  it('sign HMAC-SHA256(secret, t + "." + body) in hex, matching an independent openssl digest', () => {
    // printf '%s' '1700000000000.{"id":"evt_1"}' | openssl dgst -sha256 -hmac 'whsec-0123456789abcdef'
    expect(signWebhook('whsec-0123456789abcdef', 1_700_000_000_000, '{"id":"evt_1"}')).toBe('t=1700000000000,v1=1f3df885c2513c6cbd18fadc00b5279fcabcefd8df1f6e48c2cebfb3e212fdda');
  });

  it('verify only with the same secret, time and body', () => {
    const header = signWebhook('s'.repeat(16), 5, '{"a":1}');
    expect(verifySignature('s'.repeat(16), header, '{"a":1}')).toBe(true);
    expect(verifySignature('t'.repeat(16), header, '{"a":1}')).toBe(false);
    expect(verifySignature('s'.repeat(16), header, '{"a":2}')).toBe(false);
    expect(verifySignature('s'.repeat(16), header.replace('t=5', 't=6'), '{"a":1}')).toBe(false);
    expect(verifySignature('s'.repeat(16), undefined, '{"a":1}')).toBe(false);
  });
});

describe('envelopeOf', () => {
  it('names the event by its outbox seq and puts request and courier ids into data', () => {
    expect(envelopeOf({ outboxSeq: 42, at: 7, type: 'offer.created', requestId: 'r1', courierId: 'c1', payload: { offerId: 'o1' } }))
      .toEqual({ id: 'evt_42', type: 'offer.created', at: 7, seq: 42, data: { offerId: 'o1', requestId: 'r1', courierId: 'c1' } });
  });
});
