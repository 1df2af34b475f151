/**
 * The GeoJSON layers over the base map: H3 density, geofences, sites, assignment lines, requests; the
 * courier layer (WebGL points) sits between the lines and the request markers.
 *
 *   density cells (h3-js) ─┐
 *   fences (snapshot) ─────┤
 *   sites (/v1/nearby) ────┼─► setData on their source when the data changed (not per frame)
 *   assignment lines ──────┤   lines follow the courier: refreshed with each delta
 *   requests ──────────────┘
 */
import { cellToBoundary, latLngToCell } from 'h3-js';
import type { ExpressionSpecification, GeoJSONSource, Map as MapLibreMap } from 'maplibre-gl';
import type { CourierFleet } from './courier-fleet.js';
import { KIND_COLOR, SITE_COLOR } from './palette.js';
import type { RequestBoard } from './request-board.js';
import type { WatchFenceShape } from './watch-socket.js';

/** A site as `/v1/nearby?kind=site` answers. */
export interface SiteHit {
  id: string;
  siteKind: string;
  name: string;
  lat: number;
  lng: number;
}

const EMPTY: GeoJSON.FeatureCollection = { type: 'FeatureCollection', features: [] };
const SOURCES = ['density', 'fences', 'sites', 'lines', 'requests'] as const;
type SourceId = (typeof SOURCES)[number];

/** Adds the sources and layers; the courier layer goes in with `beforeRequests` as its beforeId. */
export function addOverlayLayers(map: MapLibreMap): { beforeRequests: string } {
  for (const id of SOURCES) map.addSource(id, { type: 'geojson', data: EMPTY });
  map.addLayer({
    id: 'density', type: 'fill', source: 'density', layout: { visibility: 'none' },
    paint: { 'fill-color': ['interpolate', ['linear'], ['get', 'count'], 1, '#d3f9d8', 5, '#69db7c', 20, '#2b8a3e'], 'fill-opacity': 0.55, 'fill-outline-color': '#ffffff' },
  });
  map.addLayer({ id: 'fences-fill', type: 'fill', source: 'fences', paint: { 'fill-color': '#fab005', 'fill-opacity': 0.08 } });
  map.addLayer({ id: 'fences-line', type: 'line', source: 'fences', paint: { 'line-color': '#f08c00', 'line-width': 2, 'line-dasharray': [3, 2] } });
  map.addLayer({
    id: 'sites', type: 'circle', source: 'sites',
    paint: {
      'circle-radius': ['match', ['get', 'siteKind'], 'blood_bank', 5, 'hospital', 5, 3],
      'circle-color': '#ffffff',
      'circle-stroke-width': 2,
      'circle-opacity': 0.8,
      'circle-stroke-color': colorBy('siteKind', SITE_COLOR),
    },
  });
  const lineColor = colorBy('kind', KIND_COLOR);
  const lineOpacity: ExpressionSpecification = ['match', ['get', 'status'], 'offered', 0.55, 0.95];
  // courier → its next stop solid (where it drives now), pickup → dropoff dashed
  map.addLayer({
    id: 'lines-drive', type: 'line', source: 'lines', filter: ['==', ['get', 'leg'], 'drive'],
    paint: { 'line-color': lineColor, 'line-width': 2.5, 'line-opacity': lineOpacity },
  });
  map.addLayer({
    id: 'lines-trip', type: 'line', source: 'lines', filter: ['==', ['get', 'leg'], 'trip'],
    paint: { 'line-color': lineColor, 'line-width': ['case', ['get', 'stacked'], 3, 1.8], 'line-opacity': lineOpacity, 'line-dasharray': [2, 1.5] },
  });
  // courier → the pickup of a leg taken en route (after its current trip): dotted
  map.addLayer({
    id: 'lines-queued', type: 'line', source: 'lines', filter: ['==', ['get', 'leg'], 'queued'],
    paint: { 'line-color': lineColor, 'line-width': 2, 'line-opacity': 0.8, 'line-dasharray': [0.5, 1.5] },
  });
  map.addLayer({
    id: 'requests', type: 'circle', source: 'requests',
    paint: {
      'circle-radius': ['match', ['get', 'urgency'], 'emergency', 9, 'urgent', 7.5, 6],
      'circle-color': ['case', ['==', ['get', 'end'], 'dropoff'], '#ffffff', colorBy('kind', KIND_COLOR)],
      'circle-stroke-width': ['match', ['get', 'urgency'], 'emergency', 3.5, 'urgent', 2.5, 2],
      'circle-stroke-color': ['case',
        ['==', ['get', 'urgency'], 'emergency'], '#000000',
        ['==', ['get', 'end'], 'dropoff'], colorBy('kind', KIND_COLOR),
        '#ffffff'],
    },
  });
  return { beforeRequests: 'requests' };
}

/** Replaces one source's features. */
export function setSource(map: MapLibreMap, id: SourceId, data: GeoJSON.FeatureCollection): void {
  (map.getSource(id) as GeoJSONSource | undefined)?.setData(data);
}

/** Pickup and dropoff markers of every live request. */
export function requestFeatures(board: RequestBoard): GeoJSON.FeatureCollection<GeoJSON.Point> {
  const features: GeoJSON.Feature<GeoJSON.Point>[] = [];
  for (const r of board.requests.values()) {
    const props = { id: r.id, kind: r.kind, status: r.status, urgency: r.urgency ?? 'routine' };
    features.push({ type: 'Feature', properties: { ...props, end: 'pickup' }, geometry: { type: 'Point', coordinates: [r.pickup.lng, r.pickup.lat] } });
    features.push({ type: 'Feature', properties: { ...props, end: 'dropoff' }, geometry: { type: 'Point', coordinates: [r.dropoff.lng, r.dropoff.lat] } });
  }
  return { type: 'FeatureCollection', features };
}

/**
 * Lines from each courier holding a request: `drive` courier → pickup and `trip` pickup → dropoff before
 * pickup; `drive` courier → dropoff after it. A leg taken en route is `queued` (dotted) until picked up; a stack's
 * legs are `stacked` (wider trip lines), so one courier's several lines read as one trip. Couriers outside the
 * view have no line (their position is unknown here).
 */
export function assignmentLines(board: RequestBoard, fleet: CourierFleet): GeoJSON.FeatureCollection<GeoJSON.LineString> {
  const features: GeoJSON.Feature<GeoJSON.LineString>[] = [];
  for (const r of board.requests.values()) {
    if (r.courierId === undefined) continue;
    const i = fleet.indexOf(r.courierId);
    if (i < 0) continue;
    const c: [number, number] = [fleet.lng[i], fleet.lat[i]];
    const p: [number, number] = [r.pickup.lng, r.pickup.lat];
    const d: [number, number] = [r.dropoff.lng, r.dropoff.lat];
    const props = { id: r.id, kind: r.kind, status: r.status, courierId: r.courierId, stacked: r.stackId !== undefined };
    if (r.status === 'picked_up') features.push(line(c, d, { ...props, leg: 'drive' }));
    else {
      // an en-route leg waits for the trip the courier is on: its way to the pickup is drawn as queued, not driven
      features.push(line(c, p, { ...props, leg: r.enRoute ? 'queued' : 'drive' }));
      features.push(line(p, d, { ...props, leg: 'trip' }));
    }
  }
  return { type: 'FeatureCollection', features };
}

/** Sites as points. */
export function siteFeatures(sites: Iterable<SiteHit>): GeoJSON.FeatureCollection<GeoJSON.Point> {
  const features: GeoJSON.Feature<GeoJSON.Point>[] = [];
  for (const s of sites) features.push({ type: 'Feature', properties: { id: s.id, siteKind: s.siteKind, name: s.name }, geometry: { type: 'Point', coordinates: [s.lng, s.lat] } });
  return { type: 'FeatureCollection', features };
}

/** Fences of a snapshot as polygons. */
export function fenceFeatures(fences: Iterable<WatchFenceShape>): GeoJSON.FeatureCollection {
  const features: GeoJSON.Feature[] = [];
  for (const f of fences) features.push({ type: 'Feature', properties: { id: f.id, kind: f.kind }, geometry: f.geometry });
  return { type: 'FeatureCollection', features };
}

/** H3 cells with the count of available couriers in each, at a resolution that suits the zoom. */
export function densityCells(fleet: CourierFleet, zoom: number): GeoJSON.FeatureCollection<GeoJSON.Polygon> {
  // res 6 ≈ 36 km² (a borough) at city zoom … res 9 ≈ 0.1 km² (a block) at street zoom
  const res = zoom < 9 ? 6 : zoom < 11 ? 7 : zoom < 13 ? 8 : 9;
  const counts = new Map<string, number>();
  for (let i = 0; i < fleet.size; i++) {
    if (fleet.status[i] !== 0) continue; // 0 = available (palette order)
    const cell = latLngToCell(fleet.lat[i], fleet.lng[i], res);
    counts.set(cell, (counts.get(cell) ?? 0) + 1);
  }
  const features: GeoJSON.Feature<GeoJSON.Polygon>[] = [];
  for (const [cell, count] of counts) {
    const ring = cellToBoundary(cell, true);
    ring.push(ring[0]);
    features.push({ type: 'Feature', properties: { cell, count }, geometry: { type: 'Polygon', coordinates: [ring] } });
  }
  return { type: 'FeatureCollection', features };
}

/** A `match` on a string property over a colour table (grey for anything else). */
function colorBy(prop: string, table: Record<string, string>): ExpressionSpecification {
  return ['match', ['get', prop], ...Object.entries(table).flat(), '#495057'] as unknown as ExpressionSpecification;
}

function line(a: [number, number], b: [number, number], properties: Record<string, unknown>): GeoJSON.Feature<GeoJSON.LineString> {
  return { type: 'Feature', properties, geometry: { type: 'LineString', coordinates: [a, b] } };
}
