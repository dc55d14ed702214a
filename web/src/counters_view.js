// Live counters from the `stats` table, and the per-interval rates the charts plot: the hit
// ratio of reads (objects and queries) and the requests per second between two polls.
import { formatBytes, formatCount, formatRatio } from './format.js';

// Reads that could hit: object reads answered from the store or not, query hits and misses.
const HITS = ['hits', 'queries.hits'];
const READS = ['hits', 'misses', 'queries.hits', 'queries.misses'];
// Requests counted for throughput: object reads and puts, query hits and misses.
const REQUESTS = ['gets', 'puts', 'queries.hits', 'queries.misses'];

const sum = (stats, names) => names.reduce((total, n) => total + (stats.get(n) ?? 0), 0);

/** Hit ratio and requests per second between two polls; ratio null when nothing was read. */
export function rates(previous, current, seconds) {
  if (!previous || seconds <= 0) return { hitRatio: null, perSecond: null };
  const reads = sum(current.stats, READS) - sum(previous.stats, READS);
  const hits = sum(current.stats, HITS) - sum(previous.stats, HITS);
  const requests = sum(current.stats, REQUESTS) - sum(previous.stats, REQUESTS);
  // A restarted server's counters can go back: that interval has no meaningful rate.
  if (reads < 0 || requests < 0) return { hitRatio: null, perSecond: null };
  return { hitRatio: reads > 0 ? hits / reads : null, perSecond: requests / seconds };
}

// [label, value from (stats, rates)]
const COUNTERS = [
  ['Entries', (s) => formatCount(s.get('entries'))],
  ['Stored', (s) => `${formatBytes(s.get('bytes') ?? 0)} of ${formatBytes(s.get('budget.cache_size') ?? 0)}`],
  ['Memory tier', (s) => `${formatBytes(s.get('memory.bytes') ?? 0)} of ${formatBytes(s.get('memory.capacity') ?? 0)}`],
  ['Hit ratio (all time)', (s) => {
    const reads = sum(s, READS);
    return formatRatio(reads > 0 ? sum(s, HITS) / reads : null);
  }],
  ['Hit ratio (last 2 s)', (s, r) => formatRatio(r.hitRatio)],
  ['Requests/s (last 2 s)', (s, r) => (r.perSecond === null ? '–' : formatCount(Number(r.perSecond.toFixed(1))))],
  ['Object reads', (s) => `${formatCount(s.get('gets'))} (${formatCount(s.get('hits'))} hits, ${formatCount(s.get('misses'))} misses)`],
  ['Puts', (s) => formatCount(s.get('puts'))],
  ['Queries', (s) => `${formatCount(s.get('queries.hits'))} hits, ${formatCount(s.get('queries.misses'))} misses, ${formatCount(s.get('queries.executions'))} runs`],
  ['Evictions', (s) => formatCount(s.get('evictions'))],
  ['Invalidations', (s) => formatCount(s.get('invalidations'))],
  ['Not admitted', (s) => formatCount(s.get('not_admitted'))],
];

export class CountersView {
  /** @param {HTMLDListElement} list */
  constructor(list) {
    this.values = [];
    for (const [label] of COUNTERS) {
      const item = document.createElement('div');
      const dt = document.createElement('dt');
      dt.textContent = label;
      const dd = document.createElement('dd');
      dd.textContent = '–';
      item.append(dt, dd);
      list.appendChild(item);
      this.values.push(dd);
    }
  }

  update(stats, currentRates) {
    COUNTERS.forEach(([, read], i) => {
      const text = read(stats, currentRates);
      if (this.values[i].textContent !== text) this.values[i].textContent = text;
    });
  }
}
