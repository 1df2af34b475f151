/**
 * The base map when no `MAP_STYLE_URL` is set (or it cannot be loaded): a neutral background and a graticule
 * whose spacing follows the zoom, so the page orients with no internet and no tile server.
 *
 *   offlineStyle() ─► style with an empty `graticule` source
 *   moveend ─► graticule(bounds, zoom) ─► setData   (only the lines in view: a handful of features)
 */
import type { StyleSpecification } from 'maplibre-gl';

/** Id of the graticule source, refreshed by the page on moveend. */
export const GRATICULE_SOURCE = 'graticule';

/** A self-contained style: no glyphs, sprites or tiles to fetch. */
export function offlineStyle(): StyleSpecification {
  return {
    version: 8,
    name: 'GeoDispatch offline',
    sources: { [GRATICULE_SOURCE]: { type: 'geojson', data: { type: 'FeatureCollection', features: [] } } },
    layers: [
      { id: 'background', type: 'background', paint: { 'background-color': '#eef1f4' } },
      {
        id: 'graticule-minor', type: 'line', source: GRATICULE_SOURCE, filter: ['==', ['get', 'major'], false],
        paint: { 'line-color': '#d3dae2', 'line-width': 1 },
      },
      {
        id: 'graticule-major', type: 'line', source: GRATICULE_SOURCE, filter: ['==', ['get', 'major'], true],
        paint: { 'line-color': '#b4bfcb', 'line-width': 1.3 },
      },
    ],
  };
}

/**
 * Meridians and parallels over the bounds `[west, south, east, north]`, spaced so about 6–15 cross the view;
 * every fifth is `major`.
 */
export function graticule(bounds: [number, number, number, number], zoom: number): GeoJSON.FeatureCollection<GeoJSON.LineString> {
  const step = stepFor(zoom);
  const [w, s, e, n] = [Math.max(-180, bounds[0]), Math.max(-85, bounds[1]), Math.min(180, bounds[2]), Math.min(85, bounds[3])];
  const features: GeoJSON.Feature<GeoJSON.LineString>[] = [];
  const line = (coords: [number, number][], v: number): void => {
    const major = Math.abs(Math.round(v / step) % 5) === 0;
    features.push({ type: 'Feature', properties: { major, value: v }, geometry: { type: 'LineString', coordinates: coords } });
  };
  for (let x = Math.ceil(w / step) * step; x <= e; x += step) line([[x, s], [x, n]], x);
  for (let y = Math.ceil(s / step) * step; y <= n; y += step) line([[w, y], [e, y]], y);
  return { type: 'FeatureCollection', features };
}

/** Degrees between lines: 10° at world zoom down to 0.001° (≈ 100 m) at street zoom. */
function stepFor(zoom: number): number {
  const steps = [10, 5, 2, 1, 0.5, 0.2, 0.1, 0.05, 0.02, 0.01, 0.005, 0.002, 0.001];
  // the view spans about 360 / 2^zoom degrees of longitude on a 512 px world; aim for ~10 lines across
  const span = 360 / 2 ** zoom * 2.5;
  return steps.find((s) => span / s >= 6) ?? steps[steps.length - 1];
}
