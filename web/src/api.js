// Talks to Quiver's HTTP API. Reads come back as Arrow IPC streams, decoded with apache-arrow;
// actions are JSON. Every failure becomes an ApiError whose message names the request and what
// the server said, so the page can show it as it is.
import { tableFromIPC } from 'apache-arrow';

const ARROW_STREAM = 'application/vnd.apache.arrow.stream';

export class ApiError extends Error {
  constructor(what, status, detail) {
    super(status ? `${what}: HTTP ${status}${detail ? ` — ${detail}` : ''}` : `${what}: ${detail}`);
    this.status = status;
  }
}

// The server's error bodies are JSON ({"error": ...} or {"message": ...}); anything else is
// shown as text, cut short.
async function errorDetail(response) {
  const text = await response.text().catch(() => '');
  try {
    const body = JSON.parse(text);
    const found = body.message ?? body.error?.message ?? body.error ?? body.detail;
    if (found !== undefined) return typeof found === 'string' ? found : JSON.stringify(found);
  } catch {
    // not JSON: fall through
  }
  return text.length > 300 ? `${text.slice(0, 300)}…` : text;
}

// On a node with authentication (docs/security.md) the page sends a bearer token. It is given
// once in the address's fragment, `/#token=qvt_...`, which browsers never send to a server,
// kept for this tab only (sessionStorage), and removed from the address bar.
const TOKEN_KEY = 'quiver-token';
function bearerToken() {
  const found = /(?:^#|&)token=([^&]+)/.exec(window.location.hash);
  if (found) {
    window.sessionStorage.setItem(TOKEN_KEY, decodeURIComponent(found[1]));
    window.history.replaceState(null, '', window.location.pathname + window.location.search);
  }
  return window.sessionStorage.getItem(TOKEN_KEY);
}

async function send(what, url, init = {}) {
  const headers = { ...init.headers };
  const token = bearerToken();
  if (token) headers.Authorization = `Bearer ${token}`;
  let response;
  try {
    response = await fetch(url, { cache: 'no-store', ...init, headers });
  } catch (e) {
    throw new ApiError(what, 0, `the server did not answer (${e.message})`);
  }
  if (response.status === 401) {
    const detail = await errorDetail(response);
    throw new ApiError(what, 401, `${detail} — open the page as /#token=YOUR_TOKEN`);
  }
  if (!response.ok) throw new ApiError(what, response.status, await errorDetail(response));
  return response;
}

/** Fetches `url` as an Arrow IPC stream and returns the decoded arrow Table. */
export async function fetchTable(what, url) {
  const response = await send(what, url, { headers: { Accept: ARROW_STREAM } });
  const bytes = new Uint8Array(await response.arrayBuffer());
  try {
    return tableFromIPC(bytes);
  } catch (e) {
    throw new ApiError(what, 0, `not an Arrow IPC stream (${e.message})`);
  }
}

/** Lists the cache's entries (the `entries` action's table), optionally under a key prefix. */
export function fetchEntries(prefix) {
  const query = prefix ? `?prefix=${encodeURIComponent(prefix)}` : '';
  return fetchTable('GET /v1/entries', `v1/entries${query}`);
}

/** Reads the `stats` counters as a Map from dotted name (e.g. "queries.hits") to number. */
export async function fetchStats() {
  const table = await fetchTable('GET /v1/stats', 'v1/stats?format=arrow');
  const names = table.getChild('name');
  const values = table.getChild('value');
  if (!names || !values) {
    throw new ApiError('GET /v1/stats', 0, 'the table has no name/value columns');
  }
  const stats = new Map();
  for (let i = 0; i < table.numRows; i++) stats.set(names.get(i), Number(values.get(i)));
  return stats;
}

/** Runs a management action (POST /v1/actions/{type}) and returns its JSON result. */
export async function runAction(type, body) {
  const what = `POST /v1/actions/${type}`;
  const response = await send(what, `v1/actions/${encodeURIComponent(type)}`, {
    method: 'POST',
    headers: { 'Content-Type': 'application/json', Accept: 'application/json' },
    body: JSON.stringify(body),
  });
  const text = await response.text();
  try {
    return text ? JSON.parse(text) : {};
  } catch {
    throw new ApiError(what, 0, `the answer is not JSON: ${text.slice(0, 200)}`);
  }
}
