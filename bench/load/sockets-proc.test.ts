import { describe, expect, it } from 'vitest';
import { parseCpuTicks, parseOpenFilesLimit, parsePortRange, parseVmRss, socketCost } from './sockets-proc.js';

const STATUS = `Name:\tnode
Umask:\t0022
State:\tS (sleeping)
VmPeak:\t 1234567 kB
VmRSS:\t  204800 kB
RssAnon:\t  150000 kB
Threads:\t11
`;

describe('parseVmRss', () => {
  it('reads VmRSS in bytes, not VmPeak or RssAnon', () => {
    expect(parseVmRss(STATUS)).toBe(204_800 * 1024);
  });

  it('says why when there is no VmRSS line', () => {
    expect(() => parseVmRss('Name:\tkthreadd\n')).toThrow(/no "VmRSS/);
  });
});

describe('parseCpuTicks', () => {
  it('adds utime and stime, even when the command name holds spaces and parentheses', () => {
    const stat = '4242 (node (main) x) S 1 4242 4242 0 -1 4194560 900 0 0 0 1500 250 0 0 20 0 11 0 12345 999 888';
    expect(parseCpuTicks(stat)).toBe(1750);
  });
});

describe('parseOpenFilesLimit', () => {
  it('reads the soft and hard limit of open files', () => {
    const limits = 'Limit                     Soft Limit           Hard Limit           Units\nMax processes             unlimited            unlimited            processes\nMax open files            20000                20000                files\n';
    expect(parseOpenFilesLimit(limits)).toEqual({ soft: 20_000, hard: 20_000 });
  });

  it('reads unlimited as Infinity', () => {
    expect(parseOpenFilesLimit('Max open files            1024                 unlimited            files\n')).toEqual({ soft: 1024, hard: Infinity });
  });
});

describe('parsePortRange', () => {
  it('reads the tab-separated low and high port', () => {
    expect(parsePortRange('32768\t60999\n')).toEqual([32768, 60999]);
  });

  it('refuses a range whose high end is below its low end', () => {
    expect(() => parsePortRange('60999 32768')).toThrow(/expected "lo hi"/);
  });
});

describe('socketCost', () => {
  it('divides the growth by the sockets held, and the second half by the sockets it added', () => {
    const mib = 2 ** 20;
    expect(socketCost({ before: 100 * mib, atHalf: 110 * mib, atFull: 118 * mib, half: 5000, full: 10_000 })).toEqual({
      total: (18 * mib) / 10_000,
      marginal: (8 * mib) / 5000,
    });
  });

  it('has no marginal figure when the second half added nothing', () => {
    expect(socketCost({ before: 1, atHalf: 2, atFull: 3, half: 10, full: 10 }).marginal).toBeNaN();
  });
});
