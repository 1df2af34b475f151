/**
 * The dispatcher's live map: token first, then the map, then the watch stream over the visible bbox.
 *
 *   token-gate ─► /config.json (MAP_STYLE_URL) ─► MapLibre map (that style, or the offline one)
 *     load ─► overlay layers + courier layer ─► WatchSocket(bbox of the view, 4 Hz)
 *       snapshot / delta ─► CourierFleet (glides) + RequestBoard (requests, events, time to offer)
 *       every 250 ms ─► request markers, assignment lines, (density) ─► GeoJSON sources
 *       every 500 ms ─► side panel
 *     moveend ─► setBBox (debounced re-subscribe) + sites around the view (/v1/nearby?kind=site) + graticule
 *     click ─► request markers under the pointer (top one in full, the rest listed), else the nearest courier within 10 px ─► details
 *
 * URL: ?token=…  ?style=<style URL>  ?lat= &lng= &zoom=  ?hz=
 */
import 'maplibre-gl/dist/maplibre-gl.css';
import './style.css';
import { Map as MapLibreMap, type MapMouseEvent, type StyleSpecification } from 'maplibre-gl';
import { createCourierLayer } from './courier-layer.js';
import { CourierFleet, mercatorX, mercatorY } from './courier-fleet.js';
import { FrameMeter } from './frame-meter.js';
import { GRATICULE_SOURCE, graticule, offlineStyle } from './offline-style.js';
import { addOverlayLayers, assignmentLines, densityCells, fenceFeatures, requestFeatures, setSource, type SiteHit, siteFeatures } from './overlay-layers.js';
import { RequestBoard } from './request-board.js';
import { SidePanel } from './side-panel.js';
import { obtainToken } from './token-gate.js';
import { type BBox, type DeltaFrame, type SnapshotFrame, streamUrl, type WatchFenceShape, WatchSocket } from './watch-socket.js';

/** The demo city (fixtures/small-city.json is London) when the URL names no centre. */
const DEFAULT_VIEW = { lng: -0.1278, lat: 51.5074, zoom: 11 };
/** Watch rate: 4 Hz keeps motion fluid with interpolation while a delta stays small. */
const DEFAULT_HZ = 4;
/** A style URL that has not loaded after this long is replaced by the offline style (no internet). */
const STYLE_TIMEOUT_MS = 8000;
/** Other requests under a click listed by id: enough for a busy restaurant's queue, short enough to read. */
const MAX_LISTED = 8;

async function main(): Promise<void> {
  const params = new URLSearchParams(location.search);
  const meter = new FrameMeter();
  meter.start();
  const token = await obtainToken(location, document.getElementById('token-gate') as HTMLFormElement);
  const config = (await fetch('/config.json').then((r) => r.json()).catch(() => ({}))) as { mapStyleUrl?: string };
  const styleUrl = params.get('style') ?? config.mapStyleUrl;
  const hz = Number(params.get('hz')) || DEFAULT_HZ;

  const fleet = new CourierFleet();
  fleet.minGlideMs = 1000 / hz;
  const board = new RequestBoard();
  const panel = new SidePanel();
  const sites = new Map<string, SiteHit>();
  let fences: WatchFenceShape[] = [];
  let offline = styleUrl === undefined;

  const map = new MapLibreMap({
    container: 'map',
    style: styleUrl ?? offlineStyle(),
    center: [num(params.get('lng'), DEFAULT_VIEW.lng), num(params.get('lat'), DEFAULT_VIEW.lat)],
    zoom: num(params.get('zoom'), DEFAULT_VIEW.zoom),
    dragRotate: false,
    pitchWithRotate: false,
    attributionControl: offline ? false : { compact: true },
  });
  map.touchZoomRotate.disableRotation();
  if (styleUrl !== undefined) {
    const fallback = (why: string): void => {
      if (map.isStyleLoaded() || offline) return;
      offline = true;
      board.log(performance.now(), `base map ${styleUrl} unavailable (${why}): offline style`);
      map.setStyle(offlineStyle() as StyleSpecification);
    };
    setTimeout(() => fallback('timeout'), STYLE_TIMEOUT_MS);
    map.once('error', (e) => fallback(String(e.error?.message ?? 'error')));
  }

  const socket = new WatchSocket(streamUrl(location, token), viewBBox(map), hz, {
    snapshot: (f: SnapshotFrame) => {
      const now = performance.now();
      fleet.reset(f.couriers, now);
      board.reset(f.requests, now);
      for (const r of f.requests) fetchUrgency(r.id);
      fences = f.fences;
      setSource(map, 'fences', fenceFeatures(fences));
      board.log(now, `watching ${f.couriers.length} couriers${f.truncated ? ' (truncated: zoom in)' : ''}, ${f.requests.length} requests, ${f.fences.length} fences`);
      dirty = true;
      map.triggerRepaint();
    },
    delta: (f: DeltaFrame) => {
      const now = performance.now();
      deltaCount += f.moved.length;
      for (const m of f.moved) fleet.move(m[0], m[1], m[2], m[3], now);
      for (const id of f.removed) fleet.remove(id);
      for (const r of f.requests) if (board.apply(r, now)) fetchUrgency(r.id);
      for (const x of f.fences) board.fence(x, now);
      deltas++;
      deltaMs += performance.now() - now;
      dirty = true;
      map.triggerRepaint();
    },
    state: (s, detail) => {
      panel.connection(s);
      if (s !== 'connecting') board.log(performance.now(), detail ?? `stream ${s}`);
    },
    error: (code, message) => board.log(performance.now(), `stream error ${code}: ${message}`),
  });
  let dirty = false;
  let deltas = 0;
  /** Main-thread ms spent applying deltas and couriers moved by them (the bench reports both). */
  let deltaMs = 0;
  let deltaCount = 0;

  const fetchUrgency = (id: string): void => {
    void api<{ urgency?: string }>(token, `/v1/requests/${encodeURIComponent(id)}`).then((r) => {
      if (r?.urgency) board.setUrgency(id, r.urgency);
      dirty = true;
    });
  };
  const refreshSites = (): void => {
    const c = map.getCenter();
    const b = map.getBounds();
    const radius = Math.min(200_000, c.distanceTo(b.getNorthEast()) * 1.2);
    void api<{ results: SiteHit[] }>(token, `/v1/nearby?kind=site&lat=${c.lat}&lng=${c.lng}&k=1000&radius=${Math.round(radius)}`).then((r) => {
      for (const s of r?.results ?? []) sites.set(s.id, s);
      setSource(map, 'sites', siteFeatures(sites.values()));
    });
  };
  const refreshGraticule = (): void => {
    if (!offline || map.getSource(GRATICULE_SOURCE) === undefined) return;
    const b = map.getBounds();
    setSource(map, GRATICULE_SOURCE as never, graticule([b.getWest(), b.getSouth(), b.getEast(), b.getNorth()], map.getZoom()));
  };

  const addLayers = (): void => {
    const { beforeRequests } = addOverlayLayers(map);
    map.addLayer(createCourierLayer(fleet, () => (document.getElementById('layer-offline') as HTMLInputElement).checked), beforeRequests);
    setSource(map, 'fences', fenceFeatures(fences));
    setSource(map, 'sites', siteFeatures(sites.values()));
    applyToggles(map);
    refreshGraticule();
    dirty = true;
  };
  map.on('style.load', addLayers);
  map.once('load', () => {
    socket.start();
    refreshSites();
  });
  map.on('moveend', () => {
    socket.setBBox(viewBBox(map));
    refreshSites();
    refreshGraticule();
  });
  for (const id of ['layer-sites', 'layer-fences', 'layer-h3', 'layer-offline']) document.getElementById(id)!.addEventListener('change', () => {
    applyToggles(map);
    map.triggerRepaint();
    dirty = true;
  });

  let density = false;
  let lines = assignmentLines(board, fleet);
  setInterval(() => {
    if (!dirty || !map.isStyleLoaded()) return;
    dirty = false;
    setSource(map, 'requests', requestFeatures(board));
    lines = assignmentLines(board, fleet);
    setSource(map, 'lines', lines);
    density = (document.getElementById('layer-h3') as HTMLInputElement).checked;
  }, 250);
  setInterval(() => {
    if (density && map.isStyleLoaded()) setSource(map, 'density', densityCells(fleet, map.getZoom()));
  }, 1000);
  setInterval(() => panel.render(fleet, board, meter, performance.timeOrigin), 500);

  map.on('click', (e: MapMouseEvent) => {
    const box: [[number, number], [number, number]] = [[e.point.x - 5, e.point.y - 5], [e.point.x + 5, e.point.y + 5]];
    // several requests often share a pickup (one restaurant, one bank): the top one in full, the others listed
    const hits = map.getLayer('requests') ? map.queryRenderedFeatures(box, { layers: ['requests'] }) : [];
    const ids = [...new Set(hits.map((f) => String(f.properties.id)))];
    if (ids.length > 0) {
      showRequest(ids[0], ids.slice(1));
      return;
    }
    const pxToWorld = 1 / (512 * 2 ** map.getZoom());
    const i = fleet.nearest(mercatorX(e.lngLat.lng), mercatorY(e.lngLat.lat), 10 * pxToWorld, performance.now());
    if (i >= 0) showCourier(i);
    else {
      const site = map.getLayer('sites') ? map.queryRenderedFeatures(box, { layers: ['sites'] })[0] : undefined;
      panel.details(site === undefined ? 'click a courier or a request' : `site ${String(site.properties.id)}\n${String(site.properties.name)}\nkind   ${String(site.properties.siteKind)}`);
    }
  });
  const showCourier = (i: number): void => {
    const id = fleet.ids[i];
    const carried = [...board.requests.values()].filter((r) => r.courierId === id);
    const jobs = carried.map((r) => `${r.kind} ${r.id} (${r.status}${r.enRoute ? ', en route after this trip' : ''})`);
    if (carried.some((r) => r.stackId !== undefined)) jobs.unshift(`stack of ${carried.filter((r) => r.stackId !== undefined).length}:`);
    panel.details(`courier ${id}\nstatus ${fleet.statusOf(i)}\nat     ${fleet.lat[i].toFixed(5)}, ${fleet.lng[i].toFixed(5)}\njobs   ${jobs.join(', ') || 'none'}`);
  };
  const showRequest = (id: string, others: readonly string[] = []): void => {
    const r = board.requests.get(id);
    const how = r?.stackId !== undefined ? ` (stack ${r.stackId})` : r?.enRoute ? ' (en route: after its current trip)' : '';
    const head = r === undefined ? `request ${id}` : `request ${id}\nkind    ${r.kind}\nstatus  ${r.status}\nurgency ${r.urgency ?? '…'}\ncourier ${r.courierId ?? '–'}${how}`;
    const also = others.slice(0, MAX_LISTED).map((o) => {
      const other = board.requests.get(o);
      return `  ${o}${other === undefined ? '' : ` ${other.kind} ${other.status}`}`;
    });
    const tail = also.length === 0 ? '' : `\nalso here${others.length > MAX_LISTED ? ` (${others.length}, first ${MAX_LISTED})` : ''}\n${also.join('\n')}`;
    panel.details(head + tail);
    void api<{ eta?: number; legs?: { id: string; status: string; courierId?: string; siteId?: string }[] }>(token, `/v1/requests/${encodeURIComponent(id)}`).then((v) => {
      if (v === undefined) return;
      const legs = (v.legs ?? []).map((l) => `  ${l.id} ${l.status}${l.courierId ? ` · ${l.courierId}` : ''}${l.siteId ? ` from ${l.siteId}` : ''}`).join('\n');
      panel.details(`${head}${v.eta !== undefined ? `\neta     ${v.eta} s` : ''}\nlegs\n${legs}${tail}`);
    });
  };

  // read-only handle for the browser test and the frame-time bench (and a curious dispatcher's console)
  Object.assign(window, { geodispatch: { map, fleet, board, socket, meter, sites, stats: () => ({ deltas, deltaMs, moved: deltaCount, couriers: fleet.size, requests: board.requests.size }), lines: () => lines } });
}

/** The view's bbox, 10 % larger on each side so couriers entering the edge are already known; whole world when zoomed out. */
function viewBBox(map: MapLibreMap): BBox {
  const b = map.getBounds();
  const w = b.getWest();
  const e = b.getEast();
  const padX = (e - w) * 0.1;
  const padY = (b.getNorth() - b.getSouth()) * 0.1;
  const south = Math.max(-90, b.getSouth() - padY);
  const north = Math.min(90, b.getNorth() + padY);
  if (e - w + 2 * padX >= 360) return [-180, south, 180, north];
  const wrap = (x: number): number => ((((x + 180) % 360) + 360) % 360) - 180;
  return [round(wrap(w - padX)), round(south), round(wrap(e + padX)), round(north)];
}

function applyToggles(map: MapLibreMap): void {
  const on = (id: string): 'visible' | 'none' => ((document.getElementById(id) as HTMLInputElement).checked ? 'visible' : 'none');
  const set = (layer: string, v: 'visible' | 'none'): void => {
    if (map.getLayer(layer)) map.setLayoutProperty(layer, 'visibility', v);
  };
  set('sites', on('layer-sites'));
  set('fences-fill', on('layer-fences'));
  set('fences-line', on('layer-fences'));
  set('density', on('layer-h3'));
}

async function api<T>(token: string, path: string): Promise<T | undefined> {
  try {
    const res = await fetch(path, { headers: { authorization: `Bearer ${token}` } });
    return res.ok ? ((await res.json()) as T) : undefined;
  } catch {
    return undefined;
  }
}

function num(v: string | null, fallback: number): number {
  const n = v === null ? NaN : Number(v);
  return Number.isFinite(n) ? n : fallback;
}

function round(x: number): number {
  return Math.round(x * 1e6) / 1e6;
}

main().catch((err: unknown) => {
  console.error(err);
  document.body.insertAdjacentHTML('afterbegin', `<p class="fallback-note">live map failed: ${String(err instanceof Error ? err.message : err)}</p>`);
});
