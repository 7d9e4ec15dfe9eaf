import { render, screen, within } from "@testing-library/svelte";
import userEvent from "@testing-library/user-event";
import { describe, expect, test } from "vitest";
import { nav } from "../src/lib/nav.svelte";
import MyAccess from "../src/screens/MyAccess.svelte";
import { mockCore, overview, request, target } from "./fixtures";

const active = request({
  id: "g1",
  status: "active",
  mine: true,
  can_revoke: true,
  granted_at_ms: Date.now() - 60_000,
  deadline_ms: Date.now() + 2 * 3600_000,
  enforced_by_target: true,
  chain_total_secs: 3600,
});
const waiting = request({ id: "p1", status: "pending", mine: true, target: "prod-db" });
const others = request({ id: "x1", status: "active", mine: false, deadline_ms: Date.now() + 60_000 });
const closed = request({ id: "old", status: "expired", mine: true });

describe("My access", () => {
  test("lists my open grants and requests only, with countdown, end time and enforcement", () => {
    mockCore({});
    render(MyAccess, { overview: overview({ requests: [active, waiting, others, closed] }) });

    expect(screen.getByTestId("grant-g1")).toBeInTheDocument();
    expect(screen.getByTestId("grant-p1")).toBeInTheDocument();
    expect(screen.queryByTestId("grant-x1")).toBeNull();
    expect(screen.queryByTestId("grant-old")).toBeNull();

    const row = screen.getByTestId("grant-g1");
    expect(within(row).getByTestId("countdown-g1")).toHaveTextContent(/0[12]:5\d:\d\d|02:00:00/);
    expect(row).toHaveTextContent(/Ends at/);
    expect(row).toHaveTextContent("Target enforces expiry itself");
    expect(screen.getByTestId("withdraw-p1")).toBeInTheDocument();
    expect(screen.queryByTestId("end-p1")).toBeNull();
  });

  test("End now asks first, then revokes", async () => {
    const calls = mockCore({ revoke: () => ({ request: { ...active, status: "revoked" }, warning: null, credential: null }) });
    const user = userEvent.setup();
    render(MyAccess, { overview: overview({ requests: [active] }) });

    await user.click(screen.getByTestId("end-g1"));
    await user.click(screen.getByTestId("confirm-cancel"));
    expect(calls.filter((c) => c.cmd === "revoke")).toHaveLength(0);

    await user.click(screen.getByTestId("end-g1"));
    await user.click(screen.getByTestId("confirm-ok"));
    expect(calls.filter((c) => c.cmd === "revoke")).toEqual([{ cmd: "revoke", args: { id: "g1", reason: null } }]);
    expect(await screen.findByTestId("access-result")).toHaveAttribute("data-status", "revoked");
  });

  test("Show token fetches the live grant's token from the core and shows it until dismissed", async () => {
    const calls = mockCore({
      issued: () => ({ label: "Access token for https://api.test, valid until …", value: "tok-123" }),
    });
    const user = userEvent.setup();
    const withToken = { ...active, can_show_issued: true };
    render(MyAccess, {
      overview: overview({ requests: [withToken, waiting], targets: [target({ needs: "access_token" })] }),
    });
    expect(screen.queryByTestId("show-issued-p1")).toBeNull();
    expect(screen.getByTestId("show-issued-g1")).toHaveTextContent("Show token");
    await user.click(screen.getByTestId("show-issued-g1"));
    expect(calls.filter((c) => c.cmd === "issued")).toEqual([{ cmd: "issued", args: { id: "g1" } }]);
    expect(await screen.findByTestId("credential-value")).toHaveTextContent("tok-123");
    await user.click(screen.getByTestId("credential-dismiss"));
    expect(screen.queryByTestId("credential-value")).toBeNull();
  });

  test("Withdraw cancels a pending request", async () => {
    const calls = mockCore({ cancel: () => ({ request: { ...waiting, status: "cancelled" }, warning: null, credential: null }) });
    const user = userEvent.setup();
    render(MyAccess, { overview: overview({ requests: [waiting] }) });

    await user.click(screen.getByTestId("withdraw-p1"));
    await user.click(screen.getByTestId("confirm-ok"));
    expect(calls.filter((c) => c.cmd === "cancel")).toEqual([{ cmd: "cancel", args: { id: "p1" } }]);
  });

  test("Request extension opens the request form in extension mode", async () => {
    mockCore({});
    const user = userEvent.setup();
    render(MyAccess, { overview: overview({ requests: [active] }) });

    await user.click(screen.getByTestId("extend-g1"));
    expect(nav.route).toBe("request");
    expect(nav.extend).toBe("g1");
  });

  test("extension is blocked, with the reason, once the chain's cap is used", () => {
    mockCore({});
    const used = { ...active, chain_total_secs: 3 * 3600 };
    render(MyAccess, { overview: overview({ requests: [used], targets: [target({ extension_cap_secs: 3 * 3600 })] }) });
    const button = screen.getByTestId("extend-g1");
    expect(button).toBeDisabled();
    expect(button).toHaveAccessibleDescription(/3h extension cap is used up/);
  });
});
