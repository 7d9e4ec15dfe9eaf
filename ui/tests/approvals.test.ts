import { render, screen, within } from "@testing-library/svelte";
import userEvent from "@testing-library/user-event";
import { describe, expect, test } from "vitest";
import ErrorBanner from "../src/components/ErrorBanner.svelte";
import Approvals from "../src/screens/Approvals.svelte";
import { me, mockCore, NOW, overview, request } from "./fixtures";

const pending = request({ id: "r1", requester: "bob", can_decide: true, requested_at_ms: Date.now() - 90_000 });

function decided(status: "approved" | "active" | "denied") {
  return { request: { ...pending, status }, warning: null, credential: null };
}

describe("Approvals", () => {
  test("shows what an approver needs to judge a request", () => {
    mockCore({});
    render(Approvals, {
      overview: overview({
        requests: [request({ ...pending, approvals: [{ by: "carol", at_ms: NOW, comment: null, offline: false }], quorum: 2 })],
      }),
    });
    const card = screen.getByTestId("pending-r1");
    expect(card).toHaveTextContent("bob");
    expect(card).toHaveTextContent("prod-db");
    expect(card).toHaveTextContent("1h");
    expect(card).toHaveTextContent("investigate incident 42");
    expect(card).toHaveTextContent("INC-42");
    expect(screen.getByTestId("quorum-r1")).toHaveTextContent("1 of 2 approvals (carol)");
    expect(screen.getByTestId("age-r1")).toHaveTextContent(/1m 3\ds ago/);
    expect(within(card).getByRole("timer")).toBeInTheDocument();
  });

  test("approve sends the id and the comment", async () => {
    const calls = mockCore({ approve: () => decided("active") });
    const user = userEvent.setup();
    render(Approvals, { overview: overview({ requests: [pending] }) });

    await user.type(screen.getByTestId("comment-r1"), "  checked with on-call ");
    await user.click(screen.getByTestId("approve-r1"));

    expect(calls.filter((c) => c.cmd === "approve")).toEqual([
      { cmd: "approve", args: { id: "r1", comment: "checked with on-call" } },
    ]);
    expect(await screen.findByTestId("approval-result")).toHaveAttribute("data-status", "active");
  });

  test("deny needs a reason, and sends it", async () => {
    const calls = mockCore({ deny: () => decided("denied") });
    const user = userEvent.setup();
    render(Approvals, { overview: overview({ requests: [pending] }) });

    await user.click(screen.getByTestId("deny-r1"));
    expect(screen.getByTestId("deny-reason-missing")).toHaveTextContent(/give the requester a reason/i);
    expect(screen.getByTestId("comment-r1")).toHaveFocus();
    expect(calls.filter((c) => c.cmd === "deny")).toHaveLength(0);

    await user.type(screen.getByTestId("comment-r1"), "no ticket");
    await user.click(screen.getByTestId("deny-r1"));
    expect(calls.filter((c) => c.cmd === "deny")).toEqual([{ cmd: "deny", args: { id: "r1", reason: "no ticket" } }]);
  });

  test("approve without a comment sends null", async () => {
    const calls = mockCore({ approve: () => decided("active") });
    const user = userEvent.setup();
    render(Approvals, { overview: overview({ requests: [pending] }) });

    await user.click(screen.getByTestId("approve-r1"));
    expect(calls.filter((c) => c.cmd === "approve")).toEqual([{ cmd: "approve", args: { id: "r1", comment: null } }]);
  });

  test("a stale sign-in asks for re-authentication before deciding", async () => {
    const calls = mockCore({
      sign_in: () => ({ name: "alice", provider: "corp", enrolled: false }),
      overview: () => overview(),
    });
    const user = userEvent.setup();
    render(Approvals, {
      overview: overview({
        me: me({ provider: "corp", signed_in: true, signed_in_at_ms: NOW - 3600_000, fresh_for_decisions: false }),
        requests: [pending],
      }),
    });

    expect(screen.getByTestId("reauth-prompt")).toHaveTextContent(/sign in again/i);
    expect(screen.getByTestId("approve-r1")).toBeDisabled();
    expect(screen.getByTestId("deny-r1")).toBeDisabled();

    await user.click(screen.getByTestId("reauth"));
    expect(calls.find((c) => c.cmd === "sign_in")?.args).toEqual({ provider: "corp", device: false });
  });

  test("no re-authentication prompt for a fresh sign-in or a local identity", () => {
    mockCore({});
    const { unmount } = render(Approvals, {
      overview: overview({
        me: me({ provider: "corp", signed_in: true, signed_in_at_ms: Date.now(), fresh_for_decisions: true }),
        requests: [pending],
      }),
    });
    expect(screen.queryByTestId("reauth-prompt")).toBeNull();
    expect(screen.getByTestId("approve-r1")).toBeEnabled();
    unmount();

    render(Approvals, { overview: overview({ me: me({ provider: null, fresh_for_decisions: false }), requests: [pending] }) });
    expect(screen.queryByTestId("reauth-prompt")).toBeNull();
    expect(screen.getByTestId("approve-r1")).toBeEnabled();
  });

  test("a refusal from approve lands in the banner with its code", async () => {
    mockCore({
      approve: () => {
        throw { code: "refused", message: "you cannot approve your own request" };
      },
    });
    const user = userEvent.setup();
    render(ErrorBanner);
    render(Approvals, { overview: overview({ requests: [pending] }) });

    await user.click(screen.getByTestId("approve-r1"));
    const banner = await screen.findByTestId("error-banner");
    expect(banner).toHaveAttribute("data-code", "refused");
    expect(banner).toHaveTextContent("you cannot approve your own request");
  });

  test("an offline approval shows the token and its QR code as an image", async () => {
    const bg = request({ id: "bg1", break_glass: true, can_decide: true });
    const svg = '<svg xmlns="http://www.w3.org/2000/svg" viewBox="0 0 10 10"><rect width="10" height="10"/></svg>';
    const calls = mockCore({
      offline_approval: () => ({ token: "bgoa1.abc", qr_svg: svg, expires_at_ms: Date.now() + 600_000 }),
    });
    const user = userEvent.setup();
    render(Approvals, { overview: overview({ requests: [bg] }) });

    await user.click(screen.getByTestId("offline-bg1"));
    expect(calls.find((c) => c.cmd === "offline_approval")?.args).toEqual({ id: "bg1", validForSecs: 600 });
    expect(await screen.findByTestId("offline-token")).toHaveTextContent("bgoa1.abc");
    const qr = screen.getByTestId("offline-qr");
    expect(qr.tagName).toBe("IMG");
    expect(qr).toHaveAttribute("alt", expect.stringMatching(/QR code/));
    expect(qr.getAttribute("src")).toBe(`data:image/svg+xml;base64,${btoa(svg)}`);
    // Never injected as markup.
    expect(screen.getByTestId("pending-bg1").querySelector("rect")).toBeNull();
  });

  test("revoking an active grant asks first and sends the reason", async () => {
    const grant = request({ id: "a1", status: "active", can_revoke: true, deadline_ms: Date.now() + 600_000 });
    const calls = mockCore({ revoke: () => ({ request: { ...grant, status: "revoked" }, warning: null, credential: null }) });
    const user = userEvent.setup();
    render(Approvals, { overview: overview({ requests: [grant] }) });

    await user.click(screen.getByTestId("revoke-a1"));
    const dialog = screen.getByRole("dialog");
    expect(dialog).toHaveAttribute("aria-modal", "true");
    // Focus moved into the dialog, onto the reason field.
    expect(dialog.contains(document.activeElement)).toBe(true);
    await user.keyboard("left the company");
    await user.click(screen.getByTestId("confirm-ok"));

    expect(calls.filter((c) => c.cmd === "revoke")).toEqual([{ cmd: "revoke", args: { id: "a1", reason: "left the company" } }]);
    expect(screen.queryByRole("dialog")).toBeNull();
  });

  test("Tab stays inside an open dialog", async () => {
    const grant = request({ id: "a1", status: "active", can_revoke: true, deadline_ms: Date.now() + 600_000 });
    mockCore({});
    const user = userEvent.setup();
    render(Approvals, { overview: overview({ requests: [grant] }) });

    await user.click(screen.getByTestId("revoke-a1"));
    const dialog = screen.getByRole("dialog");
    for (let i = 0; i < 6; i++) {
      await user.tab();
      expect(dialog.contains(document.activeElement)).toBe(true);
    }
    await user.tab({ shift: true });
    expect(dialog.contains(document.activeElement)).toBe(true);
  });

  test("Escape cancels the revoke dialog and returns focus", async () => {
    const grant = request({ id: "a1", status: "active", can_revoke: true, deadline_ms: Date.now() + 600_000 });
    const calls = mockCore({});
    const user = userEvent.setup();
    render(Approvals, { overview: overview({ requests: [grant] }) });

    const button = screen.getByTestId("revoke-a1");
    await user.click(button);
    expect(screen.getByRole("dialog")).toBeInTheDocument();
    await user.keyboard("{Escape}");
    expect(screen.queryByRole("dialog")).toBeNull();
    expect(document.activeElement).toBe(button);
    expect(calls.filter((c) => c.cmd === "revoke")).toHaveLength(0);
  });

  test("a review owed is recorded with its required comment", async () => {
    const bg = request({ id: "bg2", status: "active", break_glass: true, review: "required", can_review: true });
    const calls = mockCore({ review: () => ({ request: { ...bg, review: "done" }, warning: null, credential: null }) });
    const user = userEvent.setup();
    render(Approvals, {
      overview: overview({
        requests: [bg],
        alerts: [
          { kind: "break_glass", request: "bg2", message: "bob self-activated break-glass", at_ms: NOW },
          { kind: "review_owed", request: "bg2", message: "owes its review", at_ms: NOW },
        ],
      }),
    });

    const alert = screen.getByTestId("alert-bg2");
    expect(alert).toHaveTextContent("bob self-activated break-glass");
    await user.click(screen.getByTestId("review-bg2"));
    expect(alert).toHaveTextContent(/needs a comment/);
    expect(calls.filter((c) => c.cmd === "review")).toHaveLength(0);

    await user.type(screen.getByTestId("review-comment-bg2"), "justified: outage");
    await user.click(screen.getByTestId("review-bg2"));
    expect(calls.filter((c) => c.cmd === "review")).toEqual([{ cmd: "review", args: { id: "bg2", comment: "justified: outage" } }]);
  });
});
