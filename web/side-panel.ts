/**
 * The side panel: couriers per status, open requests per kind, time-to-offer p95, recent events, details of
 * the clicked courier or request, frame time. Redrawn at most twice a second (text, not per frame).
 */
import type { CourierFleet } from './courier-fleet.js';
import type { FrameMeter } from './frame-meter.js';
import { KIND_COLOR, PANEL_STATUSES, REQUEST_KINDS, statusCss } from './palette.js';
import type { RequestBoard } from './request-board.js';

/** Writes the panel from the page's state. */
export class SidePanel {
  private readonly el = (id: string): HTMLElement => document.getElementById(id)!;

  /** Refreshes counts, p95, events and frame time. */
  render(fleet: CourierFleet, board: RequestBoard, meter: FrameMeter, startedAt: number): void {
    const counts = fleet.counts();
    this.el('status-counts').innerHTML = PANEL_STATUSES.map((s) => row(s, counts[s], statusCss(s))).join('') + row('total', fleet.size, 'transparent');
    const open = board.openByKind();
    this.el('request-counts').innerHTML = REQUEST_KINDS.map((k) => row(k, open[k] ?? 0, KIND_COLOR[k])).join('');
    const tto = board.timeToOffer();
    this.el('tto').textContent = tto === undefined ? '–' : `${(tto.p95 / 1000).toFixed(2)} s`;
    this.el('tto-n').textContent = tto === undefined ? '' : `(${tto.n} offers)`;
    this.el('events').innerHTML = board.events.slice(0, 30).map((e) => `<li><time>${clock(startedAt, e.at)}</time>${escape(e.text)}</li>`).join('');
    const f = meter.stats();
    this.el('fps').textContent = f.frames === 0 ? '' : `frame p50 ${f.p50.toFixed(1)} ms · p95 ${f.p95.toFixed(1)} ms`;
  }

  /** Connection badge. */
  connection(state: 'connecting' | 'live' | 'retrying'): void {
    const badge = this.el('conn');
    badge.textContent = state;
    badge.className = `conn ${state === 'live' ? 'conn-live' : state === 'retrying' ? 'conn-retry' : 'conn-off'}`;
  }

  /** The clicked thing's details (plain text). */
  details(text: string): void {
    this.el('details').textContent = text;
  }
}

function row(label: string, n: number, color: string): string {
  return `<li><span><span class="dot" style="background:${color}"></span>${label}</span><b>${n}</b></li>`;
}

/** Wall-clock time of a performance.now() instant. */
function clock(startedAt: number, at: number): string {
  return new Date(startedAt + at).toLocaleTimeString([], { hour12: false });
}

function escape(s: string): string {
  return s.replace(/[&<>"]/g, (c) => ({ '&': '&amp;', '<': '&lt;', '>': '&gt;', '"': '&quot;' })[c]!);
}
