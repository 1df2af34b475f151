/**
 * Frame time of the live map with 10,000 couriers in view moving at 4 Hz, measured in the browser.
 *
 *   spawnDemo (real server, demo city, no simulated drivers) ─► PUT /v1/couriers/b0…b9999 (admin) + status available
 *   gateway WebSocket ─► {t:"locs"} with every courier's next step, 4 times a second (2 frames of 5,000)
 *   Chromium ─► /?token=<dispatcher>&hz=4 ─► wait for 10,000 in view ─► FrameMeter.reset ─► N s ─► p50 / p95
 *   phases: static (nothing moves: the idle baseline) ─► live (the gateway above, through the server) ─►
 *           in-page (the same 4 Hz deltas made, parsed and applied inside the page: the browser's cost alone)
 *
 *   npm run build && node web/build.mjs && node web/frame-bench.mjs [--couriers 10000] [--seconds 10] [--hz 4]
 *                                        [--width 1280 --height 800] [--probe]   (--probe: where a frame goes)
 *
 * Prints one JSON line per figure (bench/bench-report.ts style) and a readable summary; screenshot in
 * test-artifacts/frame-bench.png. The renderer is SwiftShader (WebGL on the CPU) unless the machine has a GPU.
 */
import { mkdirSync } from 'node:fs';
import { join } from 'node:path';
import WebSocket from 'ws';
import { launchChromium, requirePrerequisites, ROOT, spawnDemo } from './browser-harness.mjs';

const arg = (name, fallback) => {
  const i = process.argv.indexOf(`--${name}`);
  const v = i >= 0 ? Number(process.argv[i + 1]) : NaN;
  return Number.isFinite(v) && v > 0 ? v : fallback;
};
const N = arg('couriers', 10_000);
const SECONDS = arg('seconds', 10);
const HZ = arg('hz', 4);
const WIDTH = arg('width', 1280);
const HEIGHT = arg('height', 800);
/** Zoom that keeps the whole courier box in the map (the viewport less the 300 px panel): 11 at 1280 × 800. */
const ZOOM = arg('zoom', Math.round((11 + Math.log2(Math.min((WIDTH - 300) / 980, HEIGHT / 800))) * 10) / 10);
/** London, as the page opens: a 0.36° × 0.14° box fills a 1280 × 800 view at zoom 11. */
const CENTRE = { lat: 51.5074, lng: -0.1278 };
const SPAN = { lat: 0.07, lng: 0.18 };

requirePrerequisites();
const demo = await spawnDemo(['--drivers', '0', '--every', '3600'], {
  RATE_PER_SEC: '100000', RATE_BURST: '100000', GATEWAY_INGEST_PER_SEC: '1000000', GATEWAY_INGEST_BURST: '1000000',
});
let browser;
let gateway;
let ticker;
try {
  const admin = { authorization: `Bearer ${demo.tokens.admin}`, 'content-type': 'application/json' };
  const started = Date.now();
  await pool(N, 64, async (i) => {
    const id = `b${i}`;
    await put(`${demo.base}/v1/couriers/${id}`, admin, { vehicle: i % 3 === 0 ? 'car' : 'bike', capacity: 2 });
  });
  // seeded walk: deterministic positions, ~10 m per step (a bike at 4 Hz × 10 m = 40 m/s time-lapse)
  let seed = 42;
  const rnd = () => ((seed = (seed * 1664525 + 1013904223) >>> 0) / 2 ** 32);
  const lat = new Float64Array(N).map(() => CENTRE.lat + (rnd() * 2 - 1) * SPAN.lat);
  const lng = new Float64Array(N).map(() => CENTRE.lng + (rnd() * 2 - 1) * SPAN.lng);
  let ts = Date.now();
  gateway = new WebSocket(`${demo.base.replace('http', 'ws')}/v1/stream?access_token=${demo.tokens.admin}`);
  await new Promise((resolve, reject) => {
    gateway.once('open', resolve);
    gateway.once('error', reject);
  });
  let acks = 0;
  let rejected = 0;
  gateway.on('message', (d) => {
    const f = JSON.parse(String(d));
    if (f.t === 'ack') {
      acks++;
      rejected += f.rejected.length;
    } else if (f.t === 'error') console.error(`gateway error: ${f.code} ${f.message}`);
  });
  const step = () => {
    ts = Math.max(ts + 1, Date.now());
    for (let i = 0; i < N; i++) {
      lat[i] += (rnd() - 0.5) * 0.00018;
      lng[i] += (rnd() - 0.5) * 0.00028;
    }
    // MAX_BATCH_ITEMS is 10,000 per frame: two frames keep each well under it and under 1 MiB
    for (let from = 0; from < N; from += 5000) {
      const items = [];
      for (let i = from; i < Math.min(N, from + 5000); i++) items.push([`b${i}`, round(lat[i]), round(lng[i]), ts]);
      gateway.send(JSON.stringify({ t: 'locs', items }));
    }
  };
  step();
  await pool(N, 64, (i) => put(`${demo.base}/v1/couriers/b${i}/status`, admin, { status: 'available' }));
  console.error(`bench: ${N} couriers created and placed in ${((Date.now() - started) / 1000).toFixed(1)} s`);

  browser = await launchChromium();
  const page = await browser.newPage({ viewport: { width: WIDTH, height: HEIGHT } });
  await page.goto(`${demo.base}/?token=${demo.tokens.dispatcher}&hz=${HZ}&zoom=${ZOOM}`);
  await page.waitForFunction((n) => (window.geodispatch?.fleet.size ?? 0) >= n, N, { timeout: 60_000 }).catch(async (err) => {
    const seen = await page.evaluate(() => window.geodispatch?.stats()).catch(() => undefined);
    throw new Error(`the page did not show ${N} couriers: ${JSON.stringify(seen)} (${err.message})`);
  });
  const measure = async (label) => {
    await page.evaluate(() => window.geodispatch.meter.reset());
    const d0 = await page.evaluate(() => window.geodispatch.stats().deltas);
    await page.waitForTimeout(SECONDS * 1000);
    const r = await page.evaluate(() => ({ ...window.geodispatch.meter.stats(), ...window.geodispatch.stats() }));
    return { label, ...r, deltasInWindow: r.deltas - d0, msPerDelta: r.deltas > 0 ? r.deltaMs / r.deltas : 0 };
  };
  const baseline = await measure('static (no moves)');
  if (process.argv.includes('--probe')) {
    // where a frame goes: repaint every frame with nothing moving, with and without the courier layer
    await page.evaluate(() => {
      const g = window.geodispatch;
      const spin = () => {
        g.map.triggerRepaint();
        if (window.__spin) requestAnimationFrame(spin);
      };
      window.__spin = true;
      requestAnimationFrame(spin);
    });
    console.error(JSON.stringify(await measure('repaint every frame, couriers drawn')));
    await page.evaluate(() => window.geodispatch.map.setLayoutProperty('couriers', 'visibility', 'none'));
    console.error(JSON.stringify(await measure('repaint every frame, couriers hidden')));
    await page.evaluate(() => {
      const m = window.geodispatch.map;
      for (const l of m.getStyle().layers) if (l.id !== 'background') m.setLayoutProperty(l.id, 'visibility', 'none');
    });
    console.error(JSON.stringify(await measure('repaint every frame, background only')));
    await page.setViewportSize({ width: 640, height: 400 });
    console.error(JSON.stringify(await measure('repaint every frame, background only, 640x400')));
    await page.evaluate(() => window.geodispatch.map.setLayoutProperty('couriers', 'visibility', 'visible'));
    console.error(JSON.stringify(await measure('repaint every frame, couriers only, 640x400')));
    await page.setViewportSize({ width: 1280, height: 800 });
    await page.evaluate(() => {
      const m = window.geodispatch.map;
      for (const l of m.getStyle().layers) m.setLayoutProperty(l.id, 'visibility', 'visible');
      m.setLayoutProperty('density', 'visibility', 'none');
      window.__spin = false;
      window.geodispatch.map.setLayoutProperty('couriers', 'visibility', 'visible');
    });
    const t = await page.evaluate(() => {
      const g = window.geodispatch;
      const now = performance.now();
      const t0 = performance.now();
      let buf = new Float32Array(3);
      for (let k = 0; k < 20; k++) buf = g.fleet.fill(buf, 0.5, 0.3, now).data;
      return (performance.now() - t0) / 20;
    });
    console.error(`fill of ${N}+ couriers: ${t.toFixed(2)} ms`);
  }
  ticker = setInterval(step, 1000 / HZ);
  await page.waitForTimeout(1500);
  const moving = await measure(`${N} moving at ${HZ} Hz`);
  await mkdirSync(join(ROOT, 'test-artifacts'), { recursive: true });
  await page.screenshot({ path: join(ROOT, 'test-artifacts', 'frame-bench.png') });
  const renderer = await page.evaluate(() => {
    const gl = document.createElement('canvas').getContext('webgl2');
    const ext = gl?.getExtension('WEBGL_debug_renderer_info');
    return gl ? String(gl.getParameter(ext ? ext.UNMASKED_RENDERER_WEBGL : gl.RENDERER)) : 'none';
  });
  clearInterval(ticker);
  await page.waitForTimeout(1000);
  // the same motion made inside the page: 4 Hz JSON delta frames of every courier parsed and applied there,
  // so the figure is the browser's alone (on a 2-core box the server and this generator share the CPU above)
  await page.evaluate((hz) => {
    const g = window.geodispatch;
    const n = g.fleet.size;
    const ids = g.fleet.ids.slice(0, n);
    const lat = Float64Array.from(g.fleet.lat.subarray(0, n));
    const lng = Float64Array.from(g.fleet.lng.subarray(0, n));
    window.__synth = setInterval(() => {
      const moved = [];
      for (let i = 0; i < n; i++) {
        lat[i] += (Math.random() - 0.5) * 0.00018;
        lng[i] += (Math.random() - 0.5) * 0.00028;
        moved.push([ids[i], Math.round(lat[i] * 1e6) / 1e6, Math.round(lng[i] * 1e6) / 1e6, 'available']);
      }
      const text = JSON.stringify({ t: 'delta', seq: 0, moved, removed: [], requests: [], fences: [] });
      const now = performance.now();
      const f = JSON.parse(text);
      for (const m of f.moved) g.fleet.move(m[0], m[1], m[2], m[3], now);
      g.map.triggerRepaint();
    }, 1000 / hz);
  }, HZ);
  await page.waitForTimeout(1000);
  const synthetic = await measure(`${N} moving at ${HZ} Hz, deltas made in the page (server idle)`);
  await page.evaluate(() => clearInterval(window.__synth));
  for (const r of [baseline, moving, synthetic]) {
    console.error(`bench: ${r.label}: ${r.couriers} couriers in view, ${r.deltasInWindow} deltas in ${SECONDS} s, frame p50 ${r.p50.toFixed(1)} ms, p95 ${r.p95.toFixed(1)} ms, max ${r.max.toFixed(1)} ms (${r.frames} frames); applying a delta ${r.msPerDelta.toFixed(1)} ms`);
  }
  console.error(`bench: viewport ${WIDTH}x${HEIGHT} zoom ${ZOOM}, renderer ${renderer}; gateway acks ${acks}, rejected pings ${rejected}`);
  const at = new Date().toISOString();
  for (const [name, r] of [['live', moving], ['in-page', synthetic]]) {
    for (const q of ['p50', 'p95']) {
      console.log(JSON.stringify({ bench: `web.frame.${name}.${q}`, unit: 'ms', value: Math.round(r[q] * 10) / 10, couriers: r.couriers, hz: HZ, viewport: `${WIDTH}x${HEIGHT}`, baseline: { name: 'static', value: Math.round(baseline[q] * 10) / 10 }, renderer, at }));
    }
  }
} finally {
  clearInterval(ticker);
  gateway?.close();
  await browser?.close();
  await demo.stop();
}

async function put(url, headers, body) {
  const res = await fetch(url, { method: 'PUT', headers, body: JSON.stringify(body) });
  if (!res.ok) throw new Error(`PUT ${url} → ${res.status} ${await res.text()}`);
}

async function pool(n, width, task) {
  let next = 0;
  await Promise.all(Array.from({ length: width }, async () => {
    while (next < n) await task(next++);
  }));
}

function round(x) {
  return Math.round(x * 1e6) / 1e6;
}
