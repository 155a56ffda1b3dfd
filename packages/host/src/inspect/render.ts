/**
 * `iommufd-sim inspect`: the object graph of a run as a self-contained HTML page with an
 * inline SVG (one box per iommufd object, one arrow per reference from `ObjectInfo.refs`),
 * plus tables of the objects, the VFIO devices, the VMM process's fds and mappings, and the
 * IOMMU's decoded hardware state (registers, STEs, context and PASID entries).
 */
import type { Host } from '../host.js';
import { hex } from '../hex.js';
import type { HostObjectInfo } from '../platform.js';
import { hardwareTables } from './hardware.js';

/** The order of the graph's columns: what holds references sits right of what it refers to. */
const COLUMNS: readonly (readonly string[])[] = [
  ['IOAS'],
  ['HWPT_PAGING', 'DEVICE', 'ACCESS'],
  ['VIOMMU', 'FAULT'],
  ['HWPT_NESTED', 'VDEVICE', 'VEVENTQ', 'HW_QUEUE'],
];

const COLORS: Readonly<Record<string, string>> = {
  IOAS: '#dbeafe',
  HWPT_PAGING: '#dcfce7',
  HWPT_NESTED: '#bbf7d0',
  DEVICE: '#fef3c7',
  VIOMMU: '#fce7f3',
  VDEVICE: '#ede9fe',
  VEVENTQ: '#ffedd5',
  HW_QUEUE: '#e0f2fe',
  FAULT: '#fee2e2',
};

const esc = (s: string): string => s.replace(/&/g, '&amp;').replace(/</g, '&lt;').replace(/>/g, '&gt;').replace(/"/g, '&quot;');

const BOX_W = 170;
const BOX_H = 46;
const GAP_X = 70;
const GAP_Y = 22;

/** The object graph as an SVG element: boxes `<g class="object" data-id data-type>` and arrows `<path class="ref" data-from data-to>`. */
export function objectGraphSvg(objects: readonly HostObjectInfo[]): string {
  const column = (type: string): number => {
    const c = COLUMNS.findIndex((col) => col.includes(type));
    return c < 0 ? COLUMNS.length : c;
  };
  const rows = new Map<number, number>();
  const pos = new Map<number, { x: number; y: number }>();
  for (const o of [...objects].sort((a, b) => column(a.type) - column(b.type) || a.id - b.id)) {
    const c = column(o.type);
    const r = rows.get(c) ?? 0;
    rows.set(c, r + 1);
    pos.set(o.id, { x: 20 + c * (BOX_W + GAP_X), y: 20 + r * (BOX_H + GAP_Y) });
  }
  const width = 40 + (Math.max(0, ...[...rows.keys()]) + 1) * (BOX_W + GAP_X) - GAP_X;
  const height = 40 + Math.max(1, ...rows.values()) * (BOX_H + GAP_Y) - GAP_Y;
  const arrows: string[] = [];
  for (const o of objects) {
    const from = pos.get(o.id)!;
    for (const ref of o.refs) {
      const to = pos.get(ref);
      if (!to) continue;
      // From the holder's left edge to the referenced object's right edge (or across when in the same column).
      const x1 = from.x;
      const y1 = from.y + BOX_H / 2;
      const x2 = to.x + (to.x < from.x ? BOX_W : 0);
      const y2 = to.y + BOX_H / 2;
      const mx = (x1 + x2) / 2;
      arrows.push(
        `<path class="ref" data-from="${o.id}" data-to="${ref}" d="M${x1},${y1} C${mx},${y1} ${mx},${y2} ${x2},${y2}" fill="none" stroke="#475569" stroke-width="1.5" marker-end="url(#arrow)"/>`,
      );
    }
  }
  const boxes = objects.map((o) => {
    const { x, y } = pos.get(o.id)!;
    const fill = COLORS[o.type] ?? '#f1f5f9';
    const dash = o.state === 'reserved' ? ' stroke-dasharray="4 3"' : '';
    return (
      `<g class="object" data-id="${o.id}" data-type="${esc(o.type)}">` +
      `<rect x="${x}" y="${y}" width="${BOX_W}" height="${BOX_H}" rx="6" fill="${fill}" stroke="#334155"${dash}/>` +
      `<text x="${x + 10}" y="${y + 19}" font-weight="bold">${esc(o.type)} ${o.id}</text>` +
      `<text x="${x + 10}" y="${y + 37}" font-size="11">users ${o.users}${o.state === 'reserved' ? ', reserved' : ''}</text>` +
      `</g>`
    );
  });
  return (
    `<svg xmlns="http://www.w3.org/2000/svg" width="${width}" height="${height}" viewBox="0 0 ${width} ${height}" font-family="sans-serif" font-size="13">` +
    `<defs><marker id="arrow" viewBox="0 0 10 10" refX="10" refY="5" markerWidth="7" markerHeight="7" orient="auto-start-reverse"><path d="M0,0 L10,5 L0,10 z" fill="#475569"/></marker></defs>` +
    arrows.join('') +
    boxes.join('') +
    `</svg>`
  );
}

const table = (caption: string, head: readonly string[], rows: readonly (readonly (string | number)[])[]): string =>
  `<table><caption>${esc(caption)}</caption><thead><tr>${head.map((h) => `<th>${esc(h)}</th>`).join('')}</tr></thead><tbody>` +
  (rows.length === 0 ? `<tr><td colspan="${head.length}">none</td></tr>` : rows.map((r) => `<tr>${r.map((c) => `<td>${esc(String(c))}</td>`).join('')}</tr>`).join('')) +
  `</tbody></table>`;

/** What the page shows. */
export interface InspectInput {
  /** Page title (the scenario's name or file). */
  readonly title: string;
  /** The host after the run. */
  readonly host: Host;
  /** Objects of each /dev/iommu context (by fd), as last seen while it was open. */
  readonly objects: ReadonlyMap<number, readonly HostObjectInfo[]>;
}

/** The self-contained HTML page (no external resources). */
export function renderInspectHtml(input: InspectInput): string {
  const { host } = input;
  const sections = [...input.objects].map(
    ([fd, objs]) =>
      `<section class="context" data-fd="${fd}"><h2>/dev/iommu fd ${fd}: ${objs.length} object(s)</h2>${objectGraphSvg(objs)}` +
      table('Objects', ['ID', 'type', 'users', 'state', 'holds references on'], objs.map((o) => [o.id, o.type, o.users, o.state, o.refs.join(', ') || '—'])) +
      `</section>`,
  );
  const devices = host.vfioDevices.map((path) => [path, host.boundDeviceId(path) ?? 'not bound']);
  const fds = host.process.fds().map((f) => [f.fd, f.kind]);
  const vmaRows = host.process.mappings().map((v) => [hex(v.start), hex(v.end), v.prot, v.shared ? 'shared' : 'private', v.kind, v.name ?? '']);
  return `<!DOCTYPE html>
<html lang="en"><head><meta charset="utf-8"><title>${esc(input.title)} — iommufd-sim inspect</title>
<style>body{font-family:sans-serif;margin:24px;color:#0f172a}table{border-collapse:collapse;margin:12px 0}caption{text-align:left;font-weight:bold;padding:4px 0}th,td{border:1px solid #cbd5e1;padding:3px 8px;font-family:monospace;font-size:12px}th{background:#f1f5f9}</style>
</head><body>
<h1>${esc(input.title)}</h1>
<p>platform <b>${esc(host.platform)}</b>, ${host.vfioDevices.length} VFIO device(s), ${host.pinnedPages} pinned page(s)</p>
${sections.join('\n') || '<p>No /dev/iommu context was open.</p>'}
<section><h2>Machine</h2>
${table('VFIO devices', ['cdev', 'DEVICE object'], devices)}
${table('VMM process fds', ['fd', 'kind'], fds)}
${table('VMM process mappings', ['start', 'end', 'prot', 'sharing', 'kind', 'name'], vmaRows)}
</section>
<section class="hardware"><h2>IOMMU hardware state</h2>
${hardwareTables(host).map((t) => table(t.caption, t.head, t.rows)).join('\n') || '<p>The mock platform has no hardware model.</p>'}
</section>
</body></html>
`;
}
