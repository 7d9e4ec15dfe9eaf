// Plain builders for the core's view types, and a mocked IPC that records every command.
import { mockIPC } from "@tauri-apps/api/mocks";
import type { Me, Overview, RequestView, SetupStatus, TargetView } from "../src/lib/bindings";

export const NOW = Date.UTC(2026, 0, 15, 12, 0, 0);

export function target(over: Partial<TargetView> = {}): TargetView {
  return {
    name: "prod-db",
    description: "Production database",
    roles: ["read", "admin"],
    max_duration_secs: 2 * 3600,
    break_glass_max_secs: 30 * 60,
    extension_cap_secs: 3 * 3600,
    request_ttl_secs: 30 * 60,
    approver_groups: ["dba"],
    quorum: 1,
    connector: "command",
    enforces_expiry: false,
    needs: null,
    can_request: true,
    ...over,
  };
}

export function request(over: Partial<RequestView> = {}): RequestView {
  const id = over.id ?? "req-1";
  return {
    id,
    requester: "bob",
    target: "prod-db",
    role: "read",
    reason: "investigate incident 42",
    ticket: "INC-42",
    break_glass: false,
    status: "pending",
    duration_secs: 3600,
    requested_at_ms: NOW - 5 * 60_000,
    lapses_at_ms: NOW + 25 * 60_000,
    granted_at_ms: null,
    deadline_ms: null,
    ended_at_ms: null,
    approvals: [],
    denials: [],
    quorum: 1,
    extends: null,
    chain: id,
    chain_total_secs: over.duration_secs ?? 3600,
    enforced_by_target: null,
    revoked_by: null,
    revoke_failures: 0,
    last_error: null,
    review: null,
    mine: false,
    can_decide: false,
    can_revoke: false,
    can_review: false,
    can_show_issued: false,
    ...over,
  };
}

export function me(over: Partial<Me> = {}): Me {
  return {
    name: "alice",
    provider: null,
    groups: ["dba"],
    signed_in: false,
    signed_in_at_ms: null,
    fresh_for_decisions: true,
    max_auth_age_secs: 900,
    admin: false,
    approver: true,
    to_enrol: null,
    ...over,
  };
}

export function overview(over: Partial<Overview> = {}): Overview {
  return {
    now_ms: NOW,
    log_size: 10,
    me: me(),
    targets: [target()],
    requests: [],
    alerts: [],
    ...over,
  };
}

export function setupStatus(over: Partial<SetupStatus> = {}): SetupStatus {
  return {
    data_dir: "/home/alice/.local/share/breakglass",
    initialised: true,
    has_policy: true,
    providers: [],
    me: "alice",
    admin: true,
    signed_in: false,
    ...over,
  };
}

export type Call = { cmd: string; args: Record<string, unknown> };
type Handler = (args: Record<string, unknown>) => unknown;

/**
 * Answers commands from `handlers` (a handler may throw, as the core rejects) and records each
 * call. Event plumbing (listen/emit) is mocked too, so tests can emit events.
 */
export function mockCore(handlers: Record<string, Handler>): Call[] {
  const calls: Call[] = [];
  mockIPC(
    (cmd, payload) => {
      const args = (payload ?? {}) as Record<string, unknown>;
      calls.push({ cmd, args });
      // A start-up question every App test would otherwise have to answer.
      const handler = handlers[cmd] ?? (cmd === "pending_link" ? () => null : undefined);
      if (!handler) throw { code: "not_found", message: `no mock for ${cmd}` };
      return handler(args);
    },
    { shouldMockEvents: true },
  );
  return calls;
}
