/**
 * The words of a request, defined once (PRODUCT §1, §3): its kinds, urgencies and statuses, and which
 * statuses end it. The lifecycle, the loop, the API's schemas and views, the store's SQL, the worker packing
 * and the web page all read them from here.
 *
 *   pending ─► offered ─► assigned ─► picked_up ─► delivered      (any of the first four ─► cancelled | failed)
 */

/** What is carried: a food order, surplus food to a charity, blood units to a hospital. */
export const REQUEST_KINDS = ['delivery', 'rescue', 'blood'] as const;
export type RequestKind = (typeof REQUEST_KINDS)[number];

/** How much a minute matters, least first (the batch window is skipped for emergencies). */
export const URGENCIES = ['routine', 'urgent', 'emergency'] as const;
export type Urgency = (typeof URGENCIES)[number];

/** Every status a request (or blood leg) passes through, in lifecycle order. */
export const REQUEST_STATUSES = ['pending', 'offered', 'assigned', 'picked_up', 'delivered', 'cancelled', 'failed'] as const;
export type RequestStatus = (typeof REQUEST_STATUSES)[number];

/** The statuses a request never leaves. */
export const TERMINAL_STATUSES: ReadonlySet<string> = new Set<RequestStatus>(['delivered', 'cancelled', 'failed']);

/** True once a request has ended (delivered, cancelled or failed). */
export function isTerminal(status: string): boolean {
  return TERMINAL_STATUSES.has(status);
}
