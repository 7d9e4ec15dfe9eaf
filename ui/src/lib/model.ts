// Names and small facts about the core's types that several screens share.
import type { Overview, RequestView, TargetView } from "./bindings";
import { formatSpan, plural } from "./format";

/** The request status union, whatever name the generated bindings give it. */
export type Status = RequestView["status"];

export const STATUS_LABELS: Record<Status, string> = {
  pending: "Pending",
  approved: "Approved",
  active: "Active",
  revoking: "Revoking",
  expired: "Expired",
  revoked: "Revoked",
  denied: "Denied",
  cancelled: "Withdrawn",
  lapsed: "Lapsed",
  failed: "Failed",
};

export const ALL_STATUSES = Object.keys(STATUS_LABELS) as Status[];

/** Statuses in which a request still holds or awaits access. */
export const OPEN_STATUSES: readonly Status[] = ["pending", "approved", "active", "revoking"];

export function findTarget(o: Overview | null, name: string): TargetView | undefined {
  return o?.targets.find((t) => t.name === name);
}

export function findRequest(o: Overview | null, id: string): RequestView | undefined {
  return o?.requests.find((r) => r.id === id);
}

/** "1 approval from approvers", "2 approvals from sre or security". */
export function approversText(groups: readonly string[], quorum: number): string {
  const who = groups.length ? groups.join(" or ") : "no group (nobody can approve)";
  return `${plural(quorum, "approval")} from ${who}`;
}

/** "1 of 2 approvals (alice)". */
export function quorumText(r: RequestView): string {
  const names = r.approvals.map((a) => a.by);
  return `${r.approvals.length} of ${plural(r.quorum, "approval")}${names.length ? ` (${names.join(", ")})` : ""}`;
}

/** Whether the deadline is enforced by the target itself; `null` while not yet known. */
export function enforcedByTarget(r: RequestView, t: TargetView | undefined): boolean | null {
  return r.enforced_by_target ?? t?.enforces_expiry ?? null;
}

/** One sentence on where a request stands, for results and details. */
export function statusSentence(r: RequestView): string {
  switch (r.status) {
    case "pending":
      return `Waiting for approval: ${quorumText(r)}.`;
    case "approved":
      return "Approved; access is being granted.";
    case "active":
      return r.break_glass
        ? "Break-glass access is active. Every approver has been alerted and a review is owed."
        : "Access is active.";
    case "revoking":
      return "Revocation ordered; waiting for the target to confirm.";
    case "expired":
      return "Ended at its deadline.";
    case "revoked":
      return r.revoked_by ? `Ended early by ${r.revoked_by}.` : "Ended early.";
    case "denied":
      return `Denied${r.denials.length ? ` by ${r.denials.map((d) => d.by).join(", ")}` : ""}.`;
    case "cancelled":
      return "Withdrawn by the requester.";
    case "lapsed":
      return "Not decided in time; it lapsed.";
    case "failed":
      return `The target could not grant access${r.last_error ? `: ${r.last_error}` : "."}`;
  }
}

/** "30m (break-glass)". */
export function durationText(r: RequestView): string {
  return `${formatSpan(r.duration_secs)}${r.break_glass ? " (break-glass)" : ""}`;
}
