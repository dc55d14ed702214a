// Human-readable sizes, durations and numbers for the dashboard's cells and counters.

const UNITS = ['B', 'KiB', 'MiB', 'GiB', 'TiB', 'PiB'];

/** 1536 -> "1.5 KiB". */
export function formatBytes(n) {
  let value = Number(n);
  let unit = 0;
  while (Math.abs(value) >= 1024 && unit < UNITS.length - 1) {
    value /= 1024;
    unit++;
  }
  return unit === 0 ? `${value} B` : `${value.toFixed(value < 10 ? 2 : 1)} ${UNITS[unit]}`;
}

/** Seconds -> "850 ms", "12.0 s", "3 min 5 s", "2 h 10 min", "3 d 4 h". */
export function formatDuration(seconds) {
  const s = Number(seconds);
  if (s > 0 && s < 0.001) return '< 1 ms';
  if (s < 1) return `${Math.round(s * 1000)} ms`;
  if (s < 60) return `${s.toFixed(1)} s`;
  const whole = Math.floor(s);
  if (whole < 3600) return `${Math.floor(whole / 60)} min ${whole % 60} s`;
  if (whole < 86400) return `${Math.floor(whole / 3600)} h ${Math.floor((whole % 3600) / 60)} min`;
  return `${Math.floor(whole / 86400)} d ${Math.floor((whole % 86400) / 3600)} h`;
}

/** Time left until `expiresMs` (epoch ms, or null for "never"). */
export function formatTtlLeft(expiresMs, nowMs) {
  if (expiresMs === null || expiresMs === undefined) return 'no expiry';
  const left = (Number(expiresMs) - nowMs) / 1000;
  return left <= 0 ? 'expired' : formatDuration(left);
}

/** 1234567 -> "1,234,567" (counters); fractions keep 3 significant digits. */
export function formatCount(n) {
  const value = Number(n);
  if (!Number.isFinite(value)) return '–';
  if (Number.isInteger(value)) return value.toLocaleString('en-US');
  return value.toLocaleString('en-US', { maximumSignificantDigits: 3 });
}

/** 0.8734 -> "87.3 %"; null -> "–". */
export function formatRatio(ratio) {
  return ratio === null || !Number.isFinite(ratio) ? '–' : `${(ratio * 100).toFixed(1)} %`;
}
