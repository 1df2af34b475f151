import { describe, expect, it } from 'vitest';
import {
  BLOOD_TYPES,
  bloodProductCode,
  bloodTypeCode,
  compatibleDonorMask,
  compatibleDonorTypes,
  type BloodProduct,
  type BloodType,
} from './blood-types.js';
import { EngineError } from './errors.js';

// PRODUCT.md §2, copied literally: recipient ← donor units it may receive.
const RED_CELLS: Record<BloodType, BloodType[]> = {
  'O-': ['O-'],
  'O+': ['O-', 'O+'],
  'A-': ['O-', 'A-'],
  'A+': ['O-', 'O+', 'A-', 'A+'],
  'B-': ['O-', 'B-'],
  'B+': ['O-', 'O+', 'B-', 'B+'],
  'AB-': ['O-', 'A-', 'B-', 'AB-'],
  'AB+': ['O-', 'O+', 'A-', 'A+', 'B-', 'B+', 'AB-', 'AB+'],
};

// PRODUCT.md §2: O takes any group; A takes A or AB; B takes B or AB; AB takes AB only; Rh ignored.
const PLASMA: Record<BloodType, BloodType[]> = {
  'O-': ['O-', 'O+', 'A-', 'A+', 'B-', 'B+', 'AB-', 'AB+'],
  'O+': ['O-', 'O+', 'A-', 'A+', 'B-', 'B+', 'AB-', 'AB+'],
  'A-': ['A-', 'A+', 'AB-', 'AB+'],
  'A+': ['A-', 'A+', 'AB-', 'AB+'],
  'B-': ['B-', 'B+', 'AB-', 'AB+'],
  'B+': ['B-', 'B+', 'AB-', 'AB+'],
  'AB-': ['AB-', 'AB+'],
  'AB+': ['AB-', 'AB+'],
};

const SAME_ABO: Record<BloodType, BloodType[]> = {
  'O-': ['O-', 'O+'],
  'O+': ['O-', 'O+'],
  'A-': ['A-', 'A+'],
  'A+': ['A-', 'A+'],
  'B-': ['B-', 'B+'],
  'B+': ['B-', 'B+'],
  'AB-': ['AB-', 'AB+'],
  'AB+': ['AB-', 'AB+'],
};

const ALL: BloodType[] = ['O-', 'O+', 'A-', 'A+', 'B-', 'B+', 'AB-', 'AB+'];
const bit = (t: BloodType): number => 1 << ALL.indexOf(t);
const maskOf = (types: BloodType[]): number => types.reduce((m, t) => m | bit(t), 0);

function cells(table: Record<BloodType, BloodType[]>): Array<[BloodType, BloodType, boolean]> {
  return ALL.flatMap((recipient) => ALL.map((donor) => [recipient, donor, table[recipient].includes(donor)] as [BloodType, BloodType, boolean]));
}

function expectEngineError(fn: () => unknown, code: string): void {
  let thrown: unknown;
  try {
    fn();
  } catch (error) {
    thrown = error;
  }
  expect(thrown).toBeInstanceOf(EngineError);
  expect((thrown as EngineError).code).toBe(code);
}

describe('blood type vocabulary', () => {
  it('lists the eight ABO/Rh types in the order the masks use', () => {
    expect([...BLOOD_TYPES]).toEqual(ALL);
    ALL.forEach((t, i) => expect(bloodTypeCode(t)).toBe(i));
  });
});

describe('red cells (PRODUCT.md §2 table)', () => {
  it.each(cells(RED_CELLS))('a %s recipient receiving %s red cells is allowed: %s', (recipient, donor, allowed) => {
    expect((compatibleDonorMask(recipient, 'red_cells') & bit(donor)) !== 0).toBe(allowed);
    expect(compatibleDonorTypes(recipient, 'red_cells').includes(donor)).toBe(allowed);
  });

  it('gives every recipient exactly its row of the table, no more', () => {
    for (const recipient of ALL) {
      expect(compatibleDonorMask(recipient, 'red_cells')).toBe(maskOf(RED_CELLS[recipient]));
      expect([...compatibleDonorTypes(recipient, 'red_cells')].sort()).toEqual([...RED_CELLS[recipient]].sort());
    }
  });
});

describe('plasma (the other way round, Rh ignored)', () => {
  it.each(cells(PLASMA))('a %s recipient receiving %s plasma is allowed: %s', (recipient, donor, allowed) => {
    expect((compatibleDonorMask(recipient, 'plasma') & bit(donor)) !== 0).toBe(allowed);
    expect(compatibleDonorTypes(recipient, 'plasma').includes(donor)).toBe(allowed);
  });

  it('ranks the identical type first for plasma', () => {
    for (const recipient of ALL) expect(compatibleDonorTypes(recipient, 'plasma')[0]).toBe(recipient);
  });
});

describe('whole blood', () => {
  it.each(ALL.flatMap((r) => ALL.map((d) => [r, d] as const)))('a %s recipient may receive %s whole blood only if identical', (recipient, donor) => {
    expect((compatibleDonorMask(recipient, 'whole_blood') & bit(donor)) !== 0).toBe(recipient === donor);
  });

  it('lists exactly the identical type for whole blood', () => {
    for (const recipient of ALL) expect(compatibleDonorTypes(recipient, 'whole_blood')).toEqual([recipient]);
  });
});

describe('platelets', () => {
  it('allows every type by default, with the identical type first and ABO-identical types ahead of the rest', () => {
    for (const recipient of ALL) {
      const list = compatibleDonorTypes(recipient, 'platelets');
      expect([...list].sort()).toEqual([...ALL].sort());
      expect(compatibleDonorMask(recipient, 'platelets')).toBe(0xff);
      expect(list[0]).toBe(recipient);
      expect([...list.slice(0, 2)].sort(), `platelets for ${recipient}: ${list.join(' ')}`).toEqual([...SAME_ABO[recipient]].sort());
    }
  });

  it('allows ABO-identical types only when plateletsAnyAbo is false', () => {
    for (const recipient of ALL) {
      expect(compatibleDonorMask(recipient, 'platelets', { plateletsAnyAbo: false })).toBe(maskOf(SAME_ABO[recipient]));
      const list = compatibleDonorTypes(recipient, 'platelets', { plateletsAnyAbo: false });
      expect(list[0]).toBe(recipient);
      expect([...list].sort()).toEqual([...SAME_ABO[recipient]].sort());
    }
  });
});

describe('preference order', () => {
  it('puts the identical type first and O− last for red cells', () => {
    for (const recipient of ALL) {
      const list = compatibleDonorTypes(recipient, 'red_cells');
      expect(list[0]).toBe(recipient);
      expect(list[list.length - 1]).toBe('O-');
      expect(new Set(list).size).toBe(list.length);
    }
  });

  it('orders A+ red cells as A+, then O+ and A−, then O−', () => {
    const list = compatibleDonorTypes('A+', 'red_cells');
    expect(list[0]).toBe('A+');
    expect([...list.slice(1, 3)].sort()).toEqual(['A-', 'O+']);
    expect(list[3]).toBe('O-');
    expect(list).toHaveLength(4);
  });

  it('orders AB+ red cells with AB+ first and O− last among all eight', () => {
    const list = compatibleDonorTypes('AB+', 'red_cells');
    expect(list).toHaveLength(8);
    expect(list[0]).toBe('AB+');
    expect(list[7]).toBe('O-');
  });

  it('keeps the mask and the list in agreement for every product and recipient', () => {
    const products: BloodProduct[] = ['red_cells', 'plasma', 'platelets', 'whole_blood'];
    for (const product of products) {
      for (const recipient of [...ALL, 'unknown' as const]) {
        expect(compatibleDonorMask(recipient, product)).toBe(maskOf(compatibleDonorTypes(recipient, product)));
      }
    }
  });
});

describe('unknown recipient type', () => {
  it('gets group O red cells only, O+ before O−', () => {
    expect(compatibleDonorTypes('unknown', 'red_cells')).toEqual(['O+', 'O-']);
    expect(compatibleDonorMask('unknown', 'red_cells')).toBe(maskOf(['O+', 'O-']));
  });

  it('gets O− red cells only in an emergency', () => {
    expect(compatibleDonorTypes('unknown', 'red_cells', { emergency: true })).toEqual(['O-']);
    expect(compatibleDonorMask('unknown', 'red_cells', { emergency: true })).toBe(bit('O-'));
  });

  it('gets AB plasma only, emergency or not', () => {
    for (const emergency of [false, true]) {
      expect([...compatibleDonorTypes('unknown', 'plasma', { emergency })].sort()).toEqual(['AB+', 'AB-']);
      expect(compatibleDonorMask('unknown', 'plasma', { emergency })).toBe(maskOf(['AB-', 'AB+']));
    }
  });
});

describe('bad input', () => {
  it('throws E_BAD_INVENTORY for an unknown blood type', () => {
    expectEngineError(() => bloodTypeCode('C+'), 'E_BAD_INVENTORY');
    expectEngineError(() => compatibleDonorTypes('C+' as BloodType, 'red_cells'), 'E_BAD_INVENTORY');
    expectEngineError(() => compatibleDonorMask('a+' as BloodType, 'plasma'), 'E_BAD_INVENTORY');
    expectEngineError(() => compatibleDonorTypes('' as BloodType, 'whole_blood'), 'E_BAD_INVENTORY');
  });

  it('throws E_BAD_INVENTORY for an unknown blood product', () => {
    expectEngineError(() => bloodProductCode('serum'), 'E_BAD_INVENTORY');
    expectEngineError(() => compatibleDonorTypes('A+', 'serum' as BloodProduct), 'E_BAD_INVENTORY');
    expectEngineError(() => compatibleDonorMask('A+', 'serum' as BloodProduct), 'E_BAD_INVENTORY');
  });

  it('throws E_BAD_INVENTORY for an unknown product even when the recipient type is unknown', () => {
    expectEngineError(() => compatibleDonorTypes('unknown', 'serum' as BloodProduct), 'E_BAD_INVENTORY');
    expectEngineError(() => compatibleDonorMask('unknown', 'serum' as BloodProduct), 'E_BAD_INVENTORY');
  });
});
