/** Colours shared by the map layers and the side panel, so a dot in the legend matches a dot on the map. */

import { COURIER_STATUSES, type CourierStatus } from '../engine/courier-attributes.js';
import { REQUEST_KINDS } from '../dispatch/request-vocabulary.js';

/** The engine's courier statuses (PRODUCT §3); a status's index there is its GPU status code. */
export { COURIER_STATUSES, type CourierStatus, REQUEST_KINDS };
/** GPU code of offline couriers, drawn smaller or hidden. */
export const OFFLINE_CODE: number = COURIER_STATUSES.indexOf('offline');
/** The order the panel lists statuses in: working ones first, offline last. */
export const PANEL_STATUSES: readonly CourierStatus[] = [...COURIER_STATUSES.filter((s) => s !== 'offline'), 'offline'];

/** RGB 0..1 per status (available green, offered amber, busy blue, offline grey). */
export const STATUS_RGB: Record<CourierStatus, [number, number, number]> = {
  available: [0.18, 0.62, 0.27],
  offered: [0.96, 0.62, 0.05],
  busy: [0.13, 0.4, 0.86],
  offline: [0.55, 0.57, 0.6],
};

export const KIND_COLOR: Record<string, string> = { delivery: '#7048e8', rescue: '#0ca678', blood: '#e03131' };

/** Site kinds of PRODUCT §4. */
export const SITE_COLOR: Record<string, string> = {
  blood_bank: '#c92a2a', hospital: '#1971c2', restaurant: '#e67700', food_bank: '#2b8a3e', shelter: '#5f3dc4',
};

/** CSS colour of a status. */
export function statusCss(s: CourierStatus): string {
  const [r, g, b] = STATUS_RGB[s];
  return `rgb(${Math.round(r * 255)},${Math.round(g * 255)},${Math.round(b * 255)})`;
}

/** Status code for the GPU (index in COURIER_STATUSES); unknown statuses draw as offline. */
export function statusCode(s: string): number {
  const i = (COURIER_STATUSES as readonly string[]).indexOf(s);
  return i < 0 ? OFFLINE_CODE : i;
}
