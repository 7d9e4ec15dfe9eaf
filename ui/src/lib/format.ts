// How times, spans and sizes are written for people. Times arrive from the core as Unix
// milliseconds and spans as seconds; everything shown is in the user's local time zone.

function pad2(n: number): string {
  return n < 10 ? `0${n}` : String(n);
}

function hms(totalSeconds: number): string {
  const h = Math.floor(totalSeconds / 3600);
  const m = Math.floor((totalSeconds % 3600) / 60);
  const s = totalSeconds % 60;
  // Hours are not wrapped into days: a 26-hour grant reads "26:03:10".
  return `${pad2(h)}:${pad2(m)}:${pad2(s)}`;
}

/**
 * Time left, as hh:mm:ss. Rounds up, so "00:00:00" appears only once the deadline has truly
 * passed, never while access is still open.
 */
export function formatRemaining(ms: number): string {
  return hms(Math.max(0, Math.ceil(ms / 1000)));
}

/** Time gone by, as hh:mm:ss (rounded down). */
export function formatElapsed(ms: number): string {
  return hms(Math.max(0, Math.floor(ms / 1000)));
}

/** A span in words the policy would use: "2h", "1h 30m", "45m", "90s" → "1m 30s". */
export function formatSpan(totalSeconds: number): string {
  const secs = Math.max(0, Math.round(totalSeconds));
  if (secs === 0) return "0m";
  const h = Math.floor(secs / 3600);
  const m = Math.floor((secs % 3600) / 60);
  const s = secs % 60;
  const parts: string[] = [];
  if (h) parts.push(`${h}h`);
  if (m) parts.push(`${m}m`);
  if (s) parts.push(`${s}s`);
  return parts.join(" ");
}

/**
 * One Intl formatter per shape, made on first use: making one costs ≈ 3-4 ms (locale data), which
 * at module load would sit on the app's start before the first screen, whether or not that
 * screen writes a time.
 */
function lazyFormat(options: Intl.DateTimeFormatOptions): () => Intl.DateTimeFormat {
  let made: Intl.DateTimeFormat | null = null;
  return () => (made ??= new Intl.DateTimeFormat(undefined, options));
}

const sameDayFormat = lazyFormat({ hour: "2-digit", minute: "2-digit", second: "2-digit" });
const otherDayFormat = lazyFormat({
  weekday: "short",
  day: "numeric",
  month: "short",
  hour: "2-digit",
  minute: "2-digit",
});
const fullFormat = lazyFormat({
  year: "numeric",
  month: "short",
  day: "numeric",
  hour: "2-digit",
  minute: "2-digit",
  second: "2-digit",
});

/** A moment near `now` (or `clock.today`): the time alone on the same day, with the day otherwise. */
export function formatMoment(ms: number, now: number): string {
  const a = new Date(ms);
  const b = new Date(now);
  const sameDay =
    a.getFullYear() === b.getFullYear() &&
    a.getMonth() === b.getMonth() &&
    a.getDate() === b.getDate();
  return sameDay ? sameDayFormat().format(a) : otherDayFormat().format(a);
}

/** A moment with its full date, for records and tables. */
export function formatDateTime(ms: number): string {
  return fullFormat().format(new Date(ms));
}

/** For `<time datetime>`. */
export function isoTime(ms: number): string {
  return new Date(ms).toISOString();
}

export function formatBytes(bytes: number): string {
  if (bytes < 1024) return `${bytes} B`;
  const units = ["KiB", "MiB", "GiB"];
  let value = bytes / 1024;
  let unit = 0;
  while (value >= 1024 && unit < units.length - 1) {
    value /= 1024;
    unit++;
  }
  return `${value.toFixed(value < 10 ? 1 : 0)} ${units[unit]}`;
}

/** "1 approval", "2 approvals". */
export function plural(n: number, one: string, many = `${one}s`): string {
  return `${n} ${n === 1 ? one : many}`;
}
