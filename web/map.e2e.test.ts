/**
 * The live map in a real browser against the real server running the demo city.
 *
 *   node dist/api/demo.js (free port, 40 simulated drivers on WebSockets) ◄── Chromium (/usr/bin/chromium,
 *   SwiftShader WebGL) loads `/?token=<dispatcher>` ─► watch ─► couriers drawn, gliding ─► POST /v1/requests
 *   ─► marker ─► offer / accept by a simulated driver ─► assignment line rendered
 *
 * Screenshots go to test-artifacts/map-e2e/ (git-ignored, kept by CI as build artifacts).
 * Nothing here skips: without Chromium or a built page the suite fails and says what to install or run.
 */
import { mkdirSync } from 'node:fs';
import { join } from 'node:path';
import type { Browser, Page } from 'playwright-core';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
// @ts-expect-error plain ESM shared with the bench script (no .d.ts)
import { launchChromium, requirePrerequisites, ROOT, spawnDemo } from './browser-harness.mjs';

const SHOTS = join(ROOT, 'test-artifacts', 'map-e2e');

interface Demo {
  base: string;
  tokens: Record<string, string>;
  output(): string;
  stop(): Promise<void>;
}

let demo: Demo;
let browser: Browser;
let page: Page;
const pageErrors: string[] = [];

beforeAll(async () => {
  requirePrerequisites();
  mkdirSync(SHOTS, { recursive: true });
  // a time-lapse city: drivers move 150 m per second, a request every 3 s keeps lines on the map
  demo = await spawnDemo(['--drivers', '40', '--every', '3', '--speed', '150']);
  browser = await launchChromium();
  page = await browser.newPage({ viewport: { width: 1280, height: 800 } });
  page.on('pageerror', (e) => pageErrors.push(e.message));
}, 60_000);

afterAll(async () => {
  await browser?.close();
  await demo?.stop();
});

/** Evaluates in the page against `window.geodispatch`. */
function inPage<T, A = undefined>(fn: (g: any, arg: A) => T, arg?: A): Promise<T> {
  return page.evaluate(([src, a]) => new Function('g', 'a', `return (${src})(g, a)`)((window as any).geodispatch, a), [fn.toString(), arg] as const) as Promise<T>;
}

async function waitFor<T>(fn: (g: any, arg: any) => T, what: string, ms: number, arg?: unknown): Promise<T> {
  const until = Date.now() + ms;
  for (;;) {
    const v = await inPage(fn, arg).catch(() => undefined);
    if (v) return v;
    if (Date.now() > until) throw new Error(`timed out after ${ms} ms waiting for ${what}\ndemo output tail:\n${demo.output().slice(-1500)}`);
    await page.waitForTimeout(100);
  }
}

describe('live map in Chromium against the demo city', () => {
  it('asks for a token when the URL has none, and connects with the one pasted', async () => {
    const gate = await browser.newPage();
    await gate.goto(`${demo.base}/`);
    await gate.waitForSelector('#token-gate:not([hidden])', { timeout: 10_000 });
    await gate.fill('#token-input', demo.tokens.requester);
    await gate.click('#token-gate button');
    await gate.waitForFunction(() => (document.querySelector('#token-error')?.textContent ?? '').includes('dispatcher'), undefined, { timeout: 5000 });
    await gate.fill('#token-input', demo.tokens.dispatcher);
    await gate.click('#token-gate button');
    await gate.waitForFunction(() => ((window as any).geodispatch?.fleet.size ?? 0) > 0, undefined, { timeout: 15_000 });
    expect(await gate.isHidden('#token-gate')).toBe(true);
    await gate.close();
  }, 30_000);

  it('loads the page, shows the demo couriers and moves them smoothly between deltas', async () => {
    await page.goto(`${demo.base}/?token=${demo.tokens.dispatcher}`);
    await waitFor((g) => g?.fleet.size > 0 && g.stats().deltas > 2, 'couriers and deltas on the page', 15_000);
    expect(await inPage(() => !!document.querySelector('canvas.maplibregl-canvas'))).toBe(true);
    const active = await inPage((g) => {
      const out: string[] = [];
      for (let i = 0; i < g.fleet.size; i++) if (g.fleet.statusOf(i) !== 'offline') out.push(g.fleet.ids[i]);
      return out;
    });
    expect(active.length).toBeGreaterThanOrEqual(30); // the demo's 40 simulated drivers are in the London view

    // the drawn position of the simulated couriers, sampled on consecutive animation frames for 1.5 s
    const track = await page.evaluate((ids) => new Promise<Record<string, number[][]>>((resolve) => {
      const g = (window as any).geodispatch;
      const out: Record<string, number[][]> = {};
      const started = performance.now();
      const frame = (): void => {
        for (const id of ids) {
          const i = g.fleet.indexOf(id);
          if (i >= 0) (out[id] ??= []).push(g.fleet.drawnAt(i, performance.now()));
        }
        if (performance.now() - started < 1500) requestAnimationFrame(frame);
        else resolve(out);
      };
      requestAnimationFrame(frame);
    }), active);
    const moved = Object.values(track).filter((pts) => dist(pts[0], pts[pts.length - 1]) > 0);
    expect(moved.length).toBeGreaterThan(active.length / 2);
    // smooth: a moving courier passes through many intermediate positions, not one jump per 1 s fix
    const distinct = Math.max(...moved.map((pts) => new Set(pts.map((p) => p.join(','))).size));
    expect(distinct).toBeGreaterThanOrEqual(5); // fixes come once a second: 5+ positions in 1.5 s are glides
    await page.screenshot({ path: join(SHOTS, '1-couriers.png') });
  }, 30_000);

  it('shows a created request and then its assignment line from the courier', async () => {
    const auth = { authorization: `Bearer ${demo.tokens.dispatcher}`, 'content-type': 'application/json' };
    const centre = await inPage((g) => g.map.getCenter().toArray() as [number, number]);
    const near = await fetch(`${demo.base}/v1/nearby?lat=${centre[1]}&lng=${centre[0]}&kind=courier&status=available&k=1`, { headers: auth }).then((r) => r.json());
    const c = near.results[0] as { lat: number; lng: number };
    expect(c).toBeDefined();
    const res = await fetch(`${demo.base}/v1/requests`, {
      method: 'POST', headers: auth,
      // a far dropoff (~25 km) keeps the request on the map while the sped-up demo driver carries it
      body: JSON.stringify({ kind: 'delivery', pickup: { lat: c.lat + 0.002, lng: c.lng + 0.002 }, dropoff: { lat: c.lat - 0.15, lng: c.lng + 0.25 }, readyAt: Date.now(), urgency: 'urgent' }),
    });
    expect(res.status).toBe(201);
    const id = ((await res.json()) as { id: string }).id;

    await waitFor((g, rid) => g.board.requests.has(rid), `request ${id} on the map`, 10_000, id);
    await waitFor((g, rid) => g.board.requests.get(rid)?.urgency === 'urgent', `urgency of ${id}`, 5000, id);
    const assigned = await waitFor((g, rid) => {
      const r = g.board.requests.get(rid);
      const line = g.lines().features.find((f: any) => f.properties.id === rid && f.properties.leg === 'drive');
      return r && (r.status === 'assigned' || r.status === 'picked_up') && line ? { courierId: r.courierId as string, line } : undefined;
    }, `assignment line of ${id}`, 25_000, id);
    expect(assigned.line.properties.courierId).toBe(assigned.courierId);
    // the line is really drawn: the renderer has it in the drive layer
    const rendered = await waitFor((g, rid) => g.map.queryRenderedFeatures({ layers: ['lines-drive'] }).some((f: any) => f.properties.id === rid), `rendered line of ${id}`, 5000, id);
    expect(rendered).toBe(true);
    await page.screenshot({ path: join(SHOTS, '2-assignment-line.png') });

    // clicking the pickup marker shows the request's details
    // a busy machine can leave a frame between projecting and clicking, so click again (bounded) until it lands
    let shown = false;
    for (let attempt = 0; attempt < 5 && !shown; attempt++) {
      const px = await inPage((g, rid) => {
        const r = g.board.requests.get(rid);
        if (r === undefined) return undefined;
        const p = g.map.project([r.pickup.lng, r.pickup.lat]);
        return [p.x, p.y];
      }, id);
      if (px === undefined) throw new Error(`request ${id} left the map before its details could be checked`);
      await page.mouse.click(px[0], px[1]);
      shown = await page
        .waitForFunction((rid) => document.getElementById('details')!.textContent!.includes(rid), id, { timeout: 4000 })
        .then(() => true, () => false);
    }
    expect(shown, `details of ${id} after clicking its pickup`).toBe(true);
    expect(await page.textContent('#details')).toContain('delivery');
    await page.screenshot({ path: join(SHOTS, '3-request-details.png') });
  }, 60_000);

  it('shows a courier’s details on click', async () => {
    await inPage((g) => {
      const el = document.getElementById('layer-offline') as HTMLInputElement;
      el.checked = false;
      el.dispatchEvent(new Event('change'));
    });
    const target = await inPage((g) => {
      for (let i = 0; i < g.fleet.size; i++) {
        if (g.fleet.statusOf(i) === 'offline') continue;
        const p = g.map.project([g.fleet.lng[i], g.fleet.lat[i]]);
        if (p.x > 20 && p.y > 20 && p.x < 950 && p.y < 780) return { id: g.fleet.ids[i] as string, x: p.x, y: p.y, at: g.fleet.drawnAt(i, performance.now()) };
      }
      return undefined;
    });
    expect(target).toBeDefined();
    // click where it is drawn right now (it glides), found in the page
    const at = await inPage((g, id) => {
      const i = g.fleet.indexOf(id);
      const [x, y] = g.fleet.drawnAt(i, performance.now());
      const lng = x * 360 - 180;
      const lat = (360 / Math.PI) * Math.atan(Math.exp(Math.PI - 2 * Math.PI * y)) - 90;
      const p = g.map.project([lng, lat]);
      return [p.x, p.y];
    }, target!.id);
    await page.mouse.click(at[0], at[1]);
    await page.waitForFunction(() => document.getElementById('details')!.textContent!.startsWith('courier '), undefined, { timeout: 15_000 });
    await page.screenshot({ path: join(SHOTS, '4-courier-details.png') });
  }, 20_000);

  it('re-subscribes after a pan and reconnects after a dropped socket', async () => {
    const before = await inPage((g) => g.socket.watchesSent as number);
    await inPage((g) => g.map.panBy([300, 150], { duration: 0 }));
    await waitFor((g, n) => g.socket.watchesSent > n, 'a new watch after the pan', 5000, before);

    await inPage((g) => g.socket.drop());
    await page.waitForFunction(() => document.getElementById('conn')!.textContent === 'retrying', undefined, { timeout: 15_000 });
    await waitFor((g) => g.socket.connections >= 2 && document.getElementById('conn')!.textContent === 'live', 'reconnected and live', 10_000);
    const deltas = await inPage((g) => g.stats().deltas as number);
    await waitFor((g, n) => g.stats().deltas > n, 'deltas after the reconnect', 5000, deltas);

    const frames = await inPage((g) => g.meter.stats());
    console.log(`map e2e: frame time with the demo city (${await inPage((g) => g.fleet.size)} couriers in view, SwiftShader): p50 ${frames.p50.toFixed(1)} ms, p95 ${frames.p95.toFixed(1)} ms`);
    expect(pageErrors).toEqual([]);
    await page.screenshot({ path: join(SHOTS, '5-after-reconnect.png') });
  }, 30_000);
});

function dist(a: number[], b: number[]): number {
  return Math.hypot(a[0] - b[0], a[1] - b[1]);
}
