/**
 * ABO/Rh blood types, blood products and who may receive what (PRODUCT.md §2).
 *
 * Types are indices 0..7 so a set of donor types is one byte; every compatibility rule is a lookup of a
 * mask or of a preference-ordered list.
 */
import { EngineError } from './errors.js';

export const BLOOD_TYPES = ['O-', 'O+', 'A-', 'A+', 'B-', 'B+', 'AB-', 'AB+'] as const;
export type BloodType = (typeof BLOOD_TYPES)[number];
/** A recipient whose type is not yet known. */
export type RecipientType = BloodType | 'unknown';

export const BLOOD_PRODUCTS = ['red_cells', 'plasma', 'platelets', 'whole_blood'] as const;
export type BloodProduct = (typeof BLOOD_PRODUCTS)[number];

/** Shelf life per product in days (red cells at 1–6 °C, platelets at room temperature, frozen plasma). */
export const SHELF_LIFE_DAYS: Readonly<Record<BloodProduct, number>> = Object.freeze({
  red_cells: 42,
  plasma: 365,
  platelets: 5,
  whole_blood: 35,
});

const O_NEG = 0;

/** Index of a blood type, or throws E_BAD_INVENTORY. */
export function bloodTypeCode(type: string): number {
  const i = (BLOOD_TYPES as readonly string[]).indexOf(type);
  if (i < 0) throw new EngineError('E_BAD_INVENTORY', `unknown blood type '${type}' (one of ${BLOOD_TYPES.join(' ')})`);
  return i;
}

/** Index of a blood product, or throws E_BAD_INVENTORY. */
export function bloodProductCode(product: string): number {
  const i = (BLOOD_PRODUCTS as readonly string[]).indexOf(product);
  if (i < 0) throw new EngineError('E_BAD_INVENTORY', `unknown blood product '${product}' (one of ${BLOOD_PRODUCTS.join(', ')})`);
  return i;
}

function abo(t: number): number {
  return t >> 1; // 0 O, 1 A, 2 B, 3 AB
}
function rhPositive(t: number): boolean {
  return (t & 1) === 1;
}

/** Red cells: recipient antibodies must not meet donor antigens; Rh− recipients take Rh− only. */
function redCellsOk(recipient: number, donor: number): boolean {
  const antigensOk = (abo(donor) & ~abo(recipient)) === 0; // A=bit0, B=bit1 of the ABO index
  return antigensOk && (rhPositive(recipient) || !rhPositive(donor));
}

/** Plasma runs the other way round: donor plasma must carry no antibody against recipient antigens; Rh ignored. */
function plasmaOk(recipient: number, donor: number): boolean {
  return (abo(recipient) & ~abo(donor)) === 0;
}

/** Options for rules that differ between services. */
export interface CompatibilityOptions {
  /** Platelets: accept ABO-non-identical units after identical ones (default true). */
  plateletsAnyAbo?: boolean;
  /** Emergency request: an unknown-type patient gets O− only. */
  emergency?: boolean;
}

/**
 * Donor types a recipient may receive for a product, most preferred first:
 * identical type, then compatible types, O− last (it is the universal reserve).
 */
export function compatibleDonorTypes(recipient: RecipientType, product: BloodProduct, options: CompatibilityOptions = {}): BloodType[] {
  bloodProductCode(product);
  if (recipient === 'unknown') return unknownRecipientTypes(product, options.emergency === true);
  const r = bloodTypeCode(recipient);
  const ok: number[] = [];
  for (let d = 0; d < 8; d++) {
    if (productAllows(product, r, d, options)) ok.push(d);
  }
  return ok.sort((a, b) => rank(r, a, product) - rank(r, b, product) || a - b).map((d) => BLOOD_TYPES[d]);
}

/** Bitmask (bit i = BLOOD_TYPES[i]) of donor types acceptable for the recipient and product. */
export function compatibleDonorMask(recipient: RecipientType, product: BloodProduct, options: CompatibilityOptions = {}): number {
  let mask = 0;
  for (const t of compatibleDonorTypes(recipient, product, options)) mask |= 1 << bloodTypeCode(t);
  return mask;
}

function productAllows(product: BloodProduct, r: number, d: number, options: CompatibilityOptions): boolean {
  switch (product) {
    case 'red_cells':
      return redCellsOk(r, d);
    case 'plasma':
      return plasmaOk(r, d);
    case 'platelets':
      return options.plateletsAnyAbo === false ? abo(r) === abo(d) : true;
    case 'whole_blood':
      return r === d;
  }
}

/**
 * Preference tier of a compatible donor type for a recipient and product, lower is better:
 * 0 identical, 1 same ABO group (platelets), 2 other compatible, 3 O− (the universal reserve, for red
 * cells and whole blood). For an unknown recipient, the position in compatibleDonorTypes' order.
 */
export function donorPreference(recipient: RecipientType, donor: BloodType, product: BloodProduct, options: CompatibilityOptions = {}): number {
  if (recipient === 'unknown') return compatibleDonorTypes('unknown', product, options).indexOf(donor);
  return rank(bloodTypeCode(recipient), bloodTypeCode(donor), product);
}

// 0 identical, 1 same ABO (platelets), 2 other compatible, 3 O− reserve (red cells and whole blood)
function rank(r: number, d: number, product: BloodProduct): number {
  if (d === r) return 0;
  if (product === 'platelets') return abo(d) === abo(r) ? 1 : 2;
  if (d === O_NEG && product !== 'plasma') return 3;
  return 2;
}

function unknownRecipientTypes(product: BloodProduct, emergency: boolean): BloodType[] {
  switch (product) {
    case 'red_cells':
      return emergency ? ['O-'] : ['O+', 'O-'];
    case 'whole_blood':
      return ['O-'];
    case 'plasma':
      return ['AB+', 'AB-']; // AB plasma carries no anti-A or anti-B
    case 'platelets':
      return emergency ? ['O-'] : ['O+', 'O-'];
  }
}
