// The history screen's filter, shared by its two tables.
import type { HistoryFilter, RequestView } from "../../lib/bindings";
import type { Status } from "../../lib/model";

export type Filter = {
  text: string;
  /** "" for every status. */
  status: Status | "";
  /** "" for every event kind. */
  kind: string;
  /** yyyy-mm-dd from <input type=date>, "" for no bound; both days are included. */
  from: string;
  to: string;
};

/** Local midnight at the start of a yyyy-mm-dd day. */
function dayStart(day: string): number | null {
  if (!day) return null;
  const [y, m, d] = day.split("-").map(Number);
  if (!y || !m || !d) return null;
  return new Date(y, m - 1, d).getTime();
}

/** The days `fromDay` to `toDay` (yyyy-mm-dd, both included; "" for no bound) in ms: `to` is
 * exclusive (the start of the day after the last one). */
export function dayRange(fromDay: string, toDay: string): { from: number | null; to: number | null } {
  const from = dayStart(fromDay);
  const last = dayStart(toDay);
  const to = last === null ? null : new Date(last).setDate(new Date(last).getDate() + 1);
  return { from, to };
}

/** The filter's time range in ms (see `dayRange`). */
export function range(f: Filter): { from: number | null; to: number | null } {
  return dayRange(f.from, f.to);
}

export function matchesRequest(r: RequestView, f: Filter): boolean {
  const { from, to } = range(f);
  if (f.status && r.status !== f.status) return false;
  if (from !== null && r.requested_at_ms < from) return false;
  if (to !== null && r.requested_at_ms >= to) return false;
  const q = f.text.trim().toLowerCase();
  if (!q) return true;
  return [r.id, r.requester, r.target, r.role, r.reason, r.ticket ?? ""].some((s) => s.toLowerCase().includes(q));
}

export function historyFilter(f: Filter): HistoryFilter {
  const { from, to } = range(f);
  return { text: f.text.trim() || null, kinds: f.kind ? [f.kind] : [], from_ms: from, to_ms: to };
}
