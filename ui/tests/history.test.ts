import { render, screen, within } from "@testing-library/svelte";
import userEvent from "@testing-library/user-event";
import { describe, expect, test } from "vitest";
import { events } from "../src/lib/bindings";
import History from "../src/screens/History.svelte";
import { mockCore, NOW, overview, request } from "./fixtures";

const approved = request({
  id: "r1",
  requester: "bob",
  status: "expired",
  approvals: [{ by: "alice", at_ms: NOW - 200_000, comment: "ok, go", offline: false }],
  granted_at_ms: NOW - 199_000,
  deadline_ms: NOW - 100_000,
  ended_at_ms: NOW - 100_000,
});
const denied = request({
  id: "r2",
  requester: "carol",
  target: "web",
  status: "denied",
  denials: [{ by: "alice", at_ms: NOW - 50_000, comment: "no ticket", offline: false }],
});

describe("History", () => {
  test("filters the requests table and opens a request's timeline", async () => {
    mockCore({ history: () => [] });
    const user = userEvent.setup();
    render(History, { overview: overview({ requests: [approved, denied] }) });

    expect(screen.getByTestId("request-row-r1")).toBeInTheDocument();
    expect(screen.getByTestId("request-row-r2")).toBeInTheDocument();

    await user.type(screen.getByTestId("history-filter"), "carol");
    expect(screen.queryByTestId("request-row-r1")).toBeNull();
    await user.clear(screen.getByTestId("history-filter"));
    await user.selectOptions(screen.getByTestId("history-status"), "expired");
    expect(screen.queryByTestId("request-row-r2")).toBeNull();

    await user.click(screen.getByTestId("request-row-r1"));
    const dialog = screen.getByRole("dialog");
    const detail = within(dialog).getByTestId("request-detail");
    expect(detail).toHaveTextContent("Requested by bob");
    expect(detail).toHaveTextContent("Approved by alice");
    expect(detail).toHaveTextContent("ok, go");
    expect(detail).toHaveTextContent("Access granted");
    await user.keyboard("{Escape}");
    expect(screen.queryByRole("dialog")).toBeNull();
  });

  test("a request's evidence package is exported from its detail", async () => {
    const calls = mockCore({
      history: () => [],
      export_evidence: () => ({ path: "/data/exports/breakglass-r1.evidence", bytes: 4929, records: 7 }),
    });
    const user = userEvent.setup();
    render(History, { overview: overview({ requests: [approved, denied] }) });

    await user.click(screen.getByTestId("request-row-r1"));
    const dialog = screen.getByRole("dialog");
    await user.click(within(dialog).getByTestId("export-evidence"));
    const done = await within(dialog).findByTestId("evidence-done");
    expect(done).toHaveAttribute("data-path", "/data/exports/breakglass-r1.evidence");
    expect(done).toHaveTextContent("7 entries");
    expect(calls.find((c) => c.cmd === "export_evidence")?.args).toEqual({ request: "r1", path: null });
  });

  test("the events tab asks the core with the filter", async () => {
    const calls = mockCore({
      history: () => [
        { index: 3, at_ms: NOW, kind: "access_requested", actor: "bob", request: "r1", summary: "bob asked for prod-db" },
      ],
    });
    const user = userEvent.setup();
    render(History, { overview: overview({ requests: [approved] }) });

    await user.click(screen.getByTestId("tab-events"));
    expect(await screen.findByTestId("event-row-3")).toHaveTextContent("bob asked for prod-db");

    await user.type(screen.getByTestId("history-filter"), "bob");
    await user.selectOptions(screen.getByTestId("history-kind"), "access_requested");
    await screen.findByTestId("event-row-3");
    await new Promise((r) => setTimeout(r, 300));
    const last = calls.filter((c) => c.cmd === "history").at(-1);
    expect(last?.args).toEqual({ filter: { text: "bob", kinds: ["access_requested"], from_ms: null, to_ms: null } });
  });

  test("export shows progress, then the path, and verifies the bundle", async () => {
    let finish: (v: unknown) => void = () => {};
    const calls = mockCore({
      export_log: () => new Promise((resolve) => (finish = resolve)),
      verify_bundle: () => ({
        ok: false,
        headline: "Entry 7 was altered",
        details: ["signature of entry 7 does not verify"],
        entries: 12,
        checkpoint: null,
      }),
    });
    const user = userEvent.setup();
    render(History, { overview: overview() });

    await user.selectOptions(screen.getByTestId("export-format"), "bundle");
    await user.click(screen.getByTestId("export-start"));
    await events.exportProgress.emit({ done: 40, total: 100 });
    const bar = await screen.findByTestId("export-progress");
    await expect.poll(() => bar.getAttribute("value")).toBe("40");
    expect(bar).toHaveAttribute("max", "100");

    finish({ path: "/home/alice/breakglass-export.bundle", bytes: 2048, records: 12 });
    const done = await screen.findByTestId("export-done");
    expect(done).toHaveTextContent("/home/alice/breakglass-export.bundle");
    expect(calls.find((c) => c.cmd === "export_log")?.args).toEqual({
      format: "bundle",
      period: { from_ms: null, to_ms: null },
      path: null,
    });

    await user.click(screen.getByTestId("export-verify"));
    expect(calls.find((c) => c.cmd === "verify_bundle")?.args).toEqual({ path: "/home/alice/breakglass-export.bundle" });
    const result = await screen.findByTestId("verify-result");
    expect(result).toHaveAttribute("data-ok", "false");
    expect(result).toHaveTextContent("FAILED");
    expect(result).toHaveTextContent("Entry 7 was altered");
    expect(result).toHaveTextContent("signature of entry 7 does not verify");
  });

  test("a period export sends the days chosen, and a bundle is always the whole log", async () => {
    const calls = mockCore({
      export_log: () => ({ path: "/home/alice/breakglass-report.html", bytes: 9000, records: 3 }),
    });
    const user = userEvent.setup();
    render(History, { overview: overview() });

    await user.selectOptions(screen.getByTestId("export-format"), "bundle");
    expect(screen.queryByTestId("export-from")).toBeNull();
    await user.selectOptions(screen.getByTestId("export-format"), "report");
    await user.type(screen.getByTestId("export-from"), "2026-12-07");
    await user.type(screen.getByTestId("export-to"), "2026-12-01");
    expect(screen.getByTestId("export-to")).toHaveAttribute("aria-invalid", "true");
    expect(screen.getByTestId("export-start")).toBeDisabled();

    await user.clear(screen.getByTestId("export-to"));
    await user.type(screen.getByTestId("export-to"), "2026-12-08");
    await user.click(screen.getByTestId("export-start"));
    await screen.findByTestId("export-done");
    const args = calls.find((c) => c.cmd === "export_log")?.args as {
      format: string;
      period: { from_ms: number; to_ms: number };
    };
    expect(args.format).toBe("report");
    expect(args.period.from_ms).toBe(new Date(2026, 11, 7).getTime());
    expect(args.period.to_ms).toBe(new Date(2026, 11, 9).getTime());
    expect(screen.queryByTestId("export-verify")).toBeNull();
  });

  test("verify needs a path, and says OK for a good bundle", async () => {
    const calls = mockCore({
      verify_bundle: () => ({ ok: true, headline: "All 12 entries verify", details: [], entries: 12, checkpoint: "log 12 abc=" }),
    });
    const user = userEvent.setup();
    render(History, { overview: overview() });

    await user.click(screen.getByTestId("verify-start"));
    expect(screen.getByTestId("verify-path")).toHaveAttribute("aria-invalid", "true");
    expect(calls.filter((c) => c.cmd === "verify_bundle")).toHaveLength(0);

    await user.type(screen.getByTestId("verify-path"), "/tmp/x.bundle");
    await user.click(screen.getByTestId("verify-start"));
    const result = await screen.findByTestId("verify-result");
    expect(result).toHaveAttribute("data-ok", "true");
    expect(result).toHaveTextContent("OK");
  });
});

test("a file dropped on the window is verified", async () => {
  const { emit } = await import("@tauri-apps/api/event");
  const calls = mockCore({
    verify_bundle: () => ({ ok: true, headline: "All entries verify", details: [], entries: 3, checkpoint: null }),
  });
  render(History, { overview: overview() });
  // Let the drag-drop listener register: the panel loads Tauri's webview API, then listens.
  await import("@tauri-apps/api/webview");
  await new Promise((r) => setTimeout(r, 0));

  await emit("tauri://drag-drop", { paths: ["/media/usb/audit.bundle", "/tmp/other"], position: { x: 10, y: 10 } });
  expect(await screen.findByTestId("verify-result")).toHaveAttribute("data-ok", "true");
  expect(calls.find((c) => c.cmd === "verify_bundle")?.args).toEqual({ path: "/media/usb/audit.bundle" });
  expect(screen.getByTestId("verify-path")).toHaveValue("/media/usb/audit.bundle");
  expect(screen.getByText(/only the first of 2 files/i)).toBeInTheDocument();
});
