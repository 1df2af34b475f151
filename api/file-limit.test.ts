import { describe, expect, test } from 'vitest';
import { FILE_RESERVE, openFileLimit, parseOpenFileLimit, socketsThatFit } from './file-limit.js';

const LIMITS = `Limit                     Soft Limit           Hard Limit           Units
Max cpu time              unlimited            unlimited            seconds
Max open files            20000                20000                files
Max locked memory         8388608              8388608              bytes
`;

describe('file limit', () => {
  test('reads the soft open-files limit from /proc/<pid>/limits text', () => {
    expect(parseOpenFileLimit(LIMITS)).toBe(20000);
    expect(parseOpenFileLimit(LIMITS.replace('20000                20000', 'unlimited            unlimited'))).toBeUndefined();
    expect(parseOpenFileLimit('nothing here')).toBeUndefined();
  });

  test('the socket cap is lowered to the file limit minus the reserve, never raised', () => {
    expect(socketsThatFit(200_000, 20_000)).toBe(20_000 - FILE_RESERVE);
    expect(socketsThatFit(5_000, 20_000)).toBe(5_000);
    expect(socketsThatFit(200_000, undefined)).toBe(200_000);
    expect(socketsThatFit(200_000, 100)).toBe(1);
  });

  test('this machine reports a limit (Linux)', () => {
    expect(openFileLimit()).toBeGreaterThan(0);
  });
});
