// The dashboard: polls the entries and the stats every 2 s, shows them, plots the hit ratio and
// the request rate, and runs the invalidate and shrink actions. Polls never overlap: the next
// one is scheduled when the previous one has finished (an action asks for one at once).
import { fetchEntries, fetchStats, runAction } from './api.js';
import { LineChart } from './chart.js';
import { CountersView, rates } from './counters_view.js';
import { EntriesView, entriesFromTable } from './entries_view.js';
import { formatCount, formatRatio } from './format.js';

const POLL_MS = 2000;
const CHART_SAMPLES = 90; // 3 minutes at one sample per poll
const MIN_RATE_INTERVAL_S = 1; // shorter intervals (an action's extra poll) are not plotted

const $ = (id) => document.getElementById(id);

const state = {
  prefix: '',
  busy: false,
  again: false,
  timer: null,
  base: null, // {stats, t}: the sample the next rates are measured from
  rates: { hitRatio: null, perSecond: null }, // over the last interval plotted
};

const pollError = $('poll-error');
const actionStatus = $('action-status');
const updated = $('updated');

const counters = new CountersView($('counters'));
const ratioChart = new LineChart($('hit-ratio-chart'), {
  title: 'Hit ratio', capacity: CHART_SAMPLES, fixedMax: 1, format: formatRatio, color: '#1a7f37',
});
const rateChart = new LineChart($('throughput-chart'), {
  title: 'Requests per second', capacity: CHART_SAMPLES, format: formatCount, color: '#0b5cad',
});
const entries = new EntriesView($('entries'), invalidate);

function showPollErrors(errors) {
  pollError.hidden = errors.length === 0;
  pollError.textContent = errors.map((e) => e.message).join('\n');
}

function showAction(text, isError) {
  actionStatus.textContent = text;
  actionStatus.classList.toggle('error', Boolean(isError));
}

function schedule(delayMs) {
  clearTimeout(state.timer);
  state.timer = setTimeout(poll, delayMs);
}

async function poll() {
  if (state.busy) {
    state.again = true;
    return;
  }
  state.busy = true;
  try {
    const [entriesResult, statsResult] = await Promise.allSettled([
      fetchEntries(state.prefix), fetchStats(),
    ]);
    const errors = [];
    const now = Date.now();
    if (entriesResult.status === 'fulfilled') {
      entries.update(entriesFromTable(entriesResult.value), now);
    } else {
      errors.push(entriesResult.reason);
    }
    if (statsResult.status === 'fulfilled') {
      const sample = { stats: statsResult.value, t: now };
      const seconds = state.base ? (now - state.base.t) / 1000 : 0;
      if (!state.base || seconds >= MIN_RATE_INTERVAL_S) {
        state.rates = rates(state.base, sample, seconds);
        if (state.base) {
          ratioChart.push(state.rates.hitRatio);
          rateChart.push(state.rates.perSecond);
        }
        state.base = sample;
      }
      counters.update(sample.stats, state.rates);
    } else {
      errors.push(statsResult.reason);
    }
    showPollErrors(errors);
    if (errors.length < 2) updated.textContent = `Updated ${new Date(now).toLocaleTimeString()}`;
  } finally {
    state.busy = false;
    if (state.again) {
      state.again = false;
      schedule(0);
    } else {
      schedule(POLL_MS);
    }
  }
}

function removedText(result) {
  const removed = Array.isArray(result.removed) ? result.removed : [];
  return removed.length ? `removed ${removed.join(', ')}` : 'nothing was removed';
}

async function invalidate(key, button) {
  button.disabled = true;
  try {
    const result = await runAction('invalidate', { key });
    showAction(`Invalidated ${key}: ${removedText(result)}.`);
  } catch (e) {
    showAction(e.message, true);
  } finally {
    button.disabled = false; // the row goes at the next poll if the key is gone
    schedule(0);
  }
}

$('shrink-one').addEventListener('click', async (event) => {
  const button = event.currentTarget;
  button.disabled = true;
  try {
    const result = await runAction('shrink', { one: true });
    showAction(`Shrink one: ${removedText(result)}.`);
  } catch (e) {
    showAction(e.message, true);
  } finally {
    button.disabled = false;
    schedule(0);
  }
});

$('filter').addEventListener('submit', (event) => {
  event.preventDefault();
  state.prefix = $('prefix').value;
  schedule(0);
});

poll();
