import { describe, expect, it } from 'vitest';
import { FD_HEADROOM, countReason, fdsNeeded, fitToFileLimit, mergeReasons, planSockets, processesFor, sourceAddressOf, sourceAddresses, splitBlocks } from './sockets-plan.js';

describe('splitBlocks', () => {
  it('covers every index once, in contiguous blocks whose sizes differ by at most one', () => {
    const blocks = splitBlocks(10, 4);
    expect(blocks).toEqual([
      { first: 0, count: 3 },
      { first: 3, count: 3 },
      { first: 6, count: 2 },
      { first: 8, count: 2 },
    ]);
  });

  it('splits 100,000 sockets into four blocks of 25,000', () => {
    expect(splitBlocks(100_000, 4).map((b) => b.count)).toEqual([25_000, 25_000, 25_000, 25_000]);
  });

  it('refuses zero parts', () => {
    expect(() => splitBlocks(10, 0)).toThrow(/parts must be a positive integer/);
  });
});

describe('sourceAddresses', () => {
  it('uses as many loopback addresses from 127.0.0.2 as the port budget needs', () => {
    expect(sourceAddresses(100_000, 14_116)).toEqual(['127.0.0.2', '127.0.0.3', '127.0.0.4', '127.0.0.5', '127.0.0.6', '127.0.0.7', '127.0.0.8', '127.0.0.9']);
  });

  it('uses at least the minimum even when one address would do', () => {
    expect(sourceAddresses(10, 1000, 3)).toEqual(['127.0.0.2', '127.0.0.3', '127.0.0.4']);
  });

  it('says how to fix a run that would need more than 127.0.0.254', () => {
    expect(() => sourceAddresses(1_000_000, 100)).toThrow(/widen net.ipv4.ip_local_port_range or open fewer sockets/);
  });
});

describe('planSockets', () => {
  it('keeps every source address within half the ephemeral range at 100,000 sockets', () => {
    const plan = planSockets(100_000, 4, [32768, 60999]);
    const perAddress = new Map<string, number>();
    for (let i = 0; i < 100_000; i++) {
      const a = sourceAddressOf(i, plan.addresses);
      perAddress.set(a, (perAddress.get(a) ?? 0) + 1);
    }
    expect(plan.addresses).toHaveLength(8);
    expect(Math.max(...perAddress.values())).toBe(12_500);
    expect(plan.perAddress).toBe(12_500);
    expect(plan.blocks).toHaveLength(4);
  });

  it('binds one address per process at least, so a quick run uses several', () => {
    const plan = planSockets(10_000, 4, [32768, 60999]);
    expect(plan.addresses).toEqual(['127.0.0.2', '127.0.0.3', '127.0.0.4', '127.0.0.5']);
  });

  it('never forks more processes than sockets', () => {
    expect(planSockets(2, 4, [32768, 60999]).blocks).toEqual([
      { first: 0, count: 1 },
      { first: 1, count: 1 },
    ]);
  });
});

describe('reason tallies', () => {
  it('counts and merges failures by reason', () => {
    const a: Record<string, number> = {};
    countReason(a, 'ECONNREFUSED');
    countReason(a, 'ECONNREFUSED');
    countReason(a, 'HTTP 503 E_TOO_MANY_SOCKETS', 3);
    expect(mergeReasons([a, { ECONNREFUSED: 1, timeout: 2 }])).toEqual({ ECONNREFUSED: 3, 'HTTP 503 E_TOO_MANY_SOCKETS': 3, timeout: 2 });
  });
});

describe('open-files budget', () => {
  it('leaves room above the sockets for the process own files', () => {
    expect(fdsNeeded(100_000)).toBe(100_000 + FD_HEADROOM);
  });

  it('keeps every requested socket when the limit has room for them', () => {
    expect(fitToFileLimit(10_000, 20_000)).toEqual({ sockets: 10_000, clamped: false });
    expect(fitToFileLimit(100_000, 1_048_576)).toEqual({ sockets: 100_000, clamped: false });
  });

  it('clamps to the limit less the headroom when one process cannot hold them all', () => {
    expect(fitToFileLimit(100_000, 20_000)).toEqual({ sockets: 20_000 - FD_HEADROOM, clamped: true });
  });

  it('says what to raise when the limit leaves no room at all', () => {
    expect(() => fitToFileLimit(100, 256)).toThrow(/ulimit -n/);
  });

  it('adds client processes until each fits under the limit', () => {
    expect(processesFor(100_000, 4, 1_048_576)).toBe(4);
    expect(processesFor(100_000, 4, 20_000)).toBe(6);
    expect(processesFor(10_000, 4, 20_000)).toBe(4);
  });
});
