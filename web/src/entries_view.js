// The entries table: one row per cache key, from the `entries` action's Arrow table. Rows are
// kept by key between refreshes (only their cells change), so a focused "Invalidate" button
// keeps its focus while the table updates every few seconds.
import { formatBytes, formatCount, formatDuration, formatTtlLeft } from './format.js';

// [header, how a row's cell reads from the entry]
const COLUMNS = [
  ['Kind', (e) => e.kind],
  ['Version', (e) => formatCount(e.version)],
  ['Size', (e) => formatBytes(e.bytes)],
  ['Rows', (e) => formatCount(e.rows)],
  ['Cost', (e) => formatDuration(e.cost_s)],
  ['Score', (e) => formatCount(e.score)],
  ['Accesses', (e) => formatCount(e.accesses)],
  ['TTL left', (e, now) => formatTtlLeft(e.expires, now)],
  ['Depends on', (e) => (e.depends_on.length ? e.depends_on.join(', ') : '—')],
];

const NUMERIC = new Set(['Version', 'Size', 'Rows', 'Cost', 'Score', 'Accesses']);

/** Plain objects from the Arrow table's rows (lists as arrays, 64-bit integers as numbers). */
export function entriesFromTable(table) {
  const entries = [];
  for (const row of table) {
    entries.push({
      key: row.key,
      kind: row.kind,
      version: Number(row.version),
      bytes: Number(row.bytes),
      rows: Number(row.rows),
      cost_s: row.cost_s,
      accesses: Number(row.accesses),
      score: row.score,
      expires: row.expires ?? null,
      depends_on: row.depends_on ? row.depends_on.toArray() : [],
    });
  }
  return entries;
}

export class EntriesView {
  /**
   * @param {HTMLTableElement} table  a table with an empty <thead> and <tbody>
   * @param {(key: string, button: HTMLButtonElement) => void} onInvalidate
   */
  constructor(table, onInvalidate) {
    this.body = table.tBodies[0];
    this.onInvalidate = onInvalidate;
    this.rows = new Map(); // key -> <tr>
    const head = table.tHead.insertRow();
    for (const name of ['Key', ...COLUMNS.map((c) => c[0]), 'Actions']) {
      const th = document.createElement('th');
      th.scope = 'col';
      th.textContent = name;
      if (NUMERIC.has(name)) th.className = 'num';
      head.appendChild(th);
    }
    this.empty = document.createElement('tr');
    const cell = this.empty.insertCell();
    cell.colSpan = COLUMNS.length + 2;
    cell.className = 'empty';
    cell.textContent = 'No entries.';
  }

  /** Shows `entries` (in the order given); rows of keys no longer present go. */
  update(entries, nowMs) {
    const seen = new Set();
    let previous = null;
    for (const entry of entries) {
      seen.add(entry.key);
      let tr = this.rows.get(entry.key);
      if (!tr) {
        tr = this.newRow(entry.key);
        this.rows.set(entry.key, tr);
      }
      COLUMNS.forEach(([, read], i) => {
        const text = String(read(entry, nowMs));
        const td = tr.cells[i + 1];
        if (td.textContent !== text) td.textContent = text;
      });
      const expected = previous ? previous.nextSibling : this.body.firstChild;
      if (expected !== tr) this.body.insertBefore(tr, expected);
      previous = tr;
    }
    for (const [key, tr] of this.rows) {
      if (!seen.has(key)) {
        tr.remove();
        this.rows.delete(key);
      }
    }
    if (entries.length === 0) this.body.appendChild(this.empty);
    else this.empty.remove();
  }

  newRow(key) {
    const tr = document.createElement('tr');
    tr.dataset.key = key;
    const th = document.createElement('th');
    th.scope = 'row';
    th.textContent = key;
    tr.appendChild(th);
    for (const [name] of COLUMNS) {
      const td = tr.insertCell();
      if (NUMERIC.has(name)) td.className = 'num';
    }
    const button = document.createElement('button');
    button.type = 'button';
    button.textContent = 'Invalidate';
    button.setAttribute('aria-label', `Invalidate ${key}`);
    button.addEventListener('click', () => this.onInvalidate(key, button));
    tr.insertCell().appendChild(button);
    return tr;
  }
}
