// Unit tests of the page's pure parts (node's test runner: `npm test`, run by
// tests/test_dashboard.py): formatting and the rates the charts plot.
import assert from 'node:assert/strict';
import { test } from 'node:test';

import { rates } from '../src/counters_view.js';
import { formatBytes, formatDuration, formatRatio, formatTtlLeft } from '../src/format.js';

test('sizes are binary units', () => {
  assert.equal(formatBytes(0), '0 B');
  assert.equal(formatBytes(1023), '1023 B');
  assert.equal(formatBytes(1536), '1.50 KiB');
  assert.equal(formatBytes(25.2 * 2 ** 30), '25.2 GiB');
});

test('durations and time left', () => {
  assert.equal(formatDuration(0.0004), '< 1 ms');
  assert.equal(formatDuration(0.25), '250 ms');
  assert.equal(formatDuration(12), '12.0 s');
  assert.equal(formatDuration(185), '3 min 5 s');
  assert.equal(formatDuration(7800), '2 h 10 min');
  assert.equal(formatTtlLeft(null, 0), 'no expiry');
  assert.equal(formatTtlLeft(1000, 2000), 'expired');
  assert.equal(formatTtlLeft(62_000, 2000), '1 min 0 s');
});

const sample = (entries) => ({ stats: new Map(Object.entries(entries)) });

test('hit ratio and requests per second over one interval', () => {
  const before = sample({ hits: 10, misses: 10, gets: 20, puts: 5, 'queries.hits': 0 });
  const after = sample({ hits: 16, misses: 12, gets: 28, puts: 7, 'queries.hits': 2,
                         'queries.misses': 0 });
  const r = rates(before, after, 2);
  assert.equal(r.hitRatio, 8 / 10); // (6 + 2) hits of (6 + 2 + 2 + 0) reads
  assert.equal(r.perSecond, (8 + 2 + 2) / 2); // gets, puts, query hits
  assert.equal(formatRatio(r.hitRatio), '80.0 %');
});

test('no reads, no previous sample, or counters that went back: no rate', () => {
  const s = sample({ hits: 5, misses: 5, gets: 10, puts: 0 });
  assert.deepEqual(rates(null, s, 2), { hitRatio: null, perSecond: null });
  assert.equal(rates(s, s, 2).hitRatio, null);
  assert.equal(rates(s, s, 2).perSecond, 0);
  const restarted = sample({ hits: 0, misses: 0, gets: 0, puts: 0 });
  assert.deepEqual(rates(s, restarted, 2), { hitRatio: null, perSecond: null });
});
