import { render, screen } from "@testing-library/svelte";
import userEvent from "@testing-library/user-event";
import { describe, expect, test, vi } from "vitest";
import App from "../src/App.svelte";
import { events, type Overview } from "../src/lib/bindings";
import { core } from "../src/lib/core.svelte";
import { FIRST_READS_ID, readFirst } from "../src/lib/firstReads";
import { me, mockCore, overview, request, setupStatus } from "./fixtures";

/** Puts `text` in the page as src-tauri/src/page.rs does: a JSON data block in the head. */
function carry(text: string) {
  const block = document.createElement("script");
  block.type = "application/json";
  block.id = FIRST_READS_ID;
  block.textContent = text;
  document.head.append(block);
}

/** Waits until the app listens for events: it asks for a held deep link once it does. */
async function listening(calls: { cmd: string }[]) {
  await expect.poll(() => calls.some((c) => c.cmd === "pending_link")).toBe(true);
}

describe("App", () => {
  test("asks for the setup and the overview together at start, and shows the main screen", async () => {
    const calls = mockCore({
      // The setup answers only once the overview has been asked for too: one round trip, not two.
      setup_status: async () => {
        await expect.poll(() => calls.some((c) => c.cmd === "overview")).toBe(true);
        return setupStatus();
      },
      overview: () => overview(),
    });
    render(App);
    expect(await screen.findByTestId("screen")).toBeInTheDocument();
    expect(calls.slice(0, 2).map((c) => c.cmd).sort()).toEqual(["overview", "setup_status"]);
  });

  test("takes the reads started before the UI instead of asking again", async () => {
    const calls = mockCore({ setup_status: () => setupStatus(), overview: () => overview() });
    core.prefetched(readFirst());
    render(App);
    expect(await screen.findByTestId("screen")).toBeInTheDocument();
    // One more overview, once listening for log changes (below); the start itself asks nothing.
    await expect.poll(() => calls.filter((c) => c.cmd === "overview").length).toBe(2);
    await new Promise((r) => setTimeout(r, 50));
    expect(calls.filter((c) => c.cmd === "setup_status")).toHaveLength(1);
    expect(calls.filter((c) => c.cmd === "overview")).toHaveLength(2);
  });

  test("takes the reads the page carries, asking the core for neither at start", async () => {
    const calls = mockCore({ setup_status: () => setupStatus(), overview: () => overview() });
    carry(
      JSON.stringify({
        setup: setupStatus(),
        overview: overview({ requests: [request({ id: "r1", can_decide: true })] }),
      }),
    );
    // As main.ts does: mount once the reads are applied.
    await core.prefetched(readFirst());
    // Taken once: the block has left the page, so a later start asks the core.
    expect(document.getElementById(FIRST_READS_ID)).toBeNull();
    render(App);
    // The first screen is there at once, and nothing was asked for it: listening for events and
    // the held-link question wait until it has been drawn.
    expect(screen.getByTestId("screen")).toBeInTheDocument();
    expect(screen.getByTestId("approvals-count").textContent).toBe("1");
    expect(calls).toEqual([]);
    await listening(calls);
    // The one overview asked for is the catch-up once listening for log changes.
    await expect.poll(() => calls.filter((c) => c.cmd === "overview").length).toBe(1);
    await new Promise((r) => setTimeout(r, 50));
    expect(calls.filter((c) => c.cmd === "setup_status")).toHaveLength(0);
    expect(calls.filter((c) => c.cmd === "overview")).toHaveLength(1);
  });

  test("a page whose first reads are unreadable asks the core instead", async () => {
    const calls = mockCore({ setup_status: () => setupStatus(), overview: () => overview() });
    carry("{ not json");
    vi.spyOn(console, "error").mockImplementation(() => {});
    core.prefetched(readFirst());
    render(App);
    expect(await screen.findByTestId("screen")).toBeInTheDocument();
    expect(calls.filter((c) => c.cmd === "setup_status")).toHaveLength(1);
    expect(document.getElementById(FIRST_READS_ID)).toBeNull();
  });

  test("a change between the first read and listening for changes is shown, without an event", async () => {
    let current: Overview = overview({ requests: [request({ id: "r1", can_decide: true })] });
    mockCore({ setup_status: () => setupStatus(), overview: () => current });
    core.prefetched(readFirst());
    // The log changes after the first read, before the app listens: no event will tell of it.
    current = overview({
      log_size: 11,
      requests: [request({ id: "r1", can_decide: true }), request({ id: "r2", can_decide: true })],
    });
    render(App);
    await expect.poll(() => screen.queryByTestId("approvals-count")?.textContent).toBe("2");
  });

  test("before the first run, the overview the core refuses at start is not shown as an error", async () => {
    mockCore({
      setup_status: () => setupStatus({ initialised: false, has_policy: false, me: null, admin: false }),
      overview: () => {
        throw { code: "setup_required", message: "no data directory is open" };
      },
    });
    render(App);
    expect(await screen.findByTestId("setup-admin")).toBeInTheDocument();
    expect(screen.queryByTestId("error-banner")).toBeNull();
    expect(screen.queryByTestId("screen")).toBeNull();
  });

  test("reads the overview again on every log change and counts what waits for me", async () => {
    let current: Overview = overview({ requests: [request({ id: "r1", can_decide: true })] });
    const calls = mockCore({ setup_status: () => setupStatus(), overview: () => current });
    render(App);

    expect(await screen.findByTestId("approvals-count")).toHaveTextContent("1");
    const before = calls.filter((c) => c.cmd === "overview").length;

    current = overview({
      log_size: 11,
      requests: [request({ id: "r1", can_decide: true }), request({ id: "r2", can_decide: true })],
    });
    await events.logChanged.emit({ size: 11 });
    await expect.poll(() => screen.getByTestId("approvals-count").textContent).toBe("2");
    expect(calls.filter((c) => c.cmd === "overview").length).toBeGreaterThan(before);
  });

  test("navigates with the main links and marks the current one", async () => {
    mockCore({ setup_status: () => setupStatus(), overview: () => overview() });
    const user = userEvent.setup();
    render(App);

    await user.click(await screen.findByTestId("nav-history"));
    expect(screen.getByRole("heading", { level: 1 })).toHaveTextContent("History & export");
    expect(screen.getByTestId("nav-history")).toHaveAttribute("aria-current", "page");
    expect(screen.getByTestId("nav-request")).not.toHaveAttribute("aria-current");
    // Focus follows to the new screen's heading.
    expect(document.activeElement).toBe(screen.getByRole("heading", { level: 1 }));
  });

  test("a deep link to a pending request opens it on the approvals screen", async () => {
    const calls = mockCore({
      setup_status: () => setupStatus(),
      overview: () => overview({ requests: [request({ id: "r7", can_decide: true })] }),
    });
    render(App);
    await listening(calls);

    await events.openRequest.emit({ id: "r7" });
    const card = await screen.findByTestId("pending-r7");
    expect(screen.getByTestId("nav-approvals")).toHaveAttribute("aria-current", "page");
    await expect.poll(() => document.activeElement).toBe(card);
  });

  test("a deep link to a finished request opens its record in history", async () => {
    const calls = mockCore({
      setup_status: () => setupStatus(),
      overview: () => overview({ requests: [request({ id: "r8", status: "expired" })] }),
    });
    render(App);
    await listening(calls);

    await events.openRequest.emit({ id: "r8" });
    expect(await screen.findByTestId("request-detail")).toHaveAttribute("data-id", "r8");
    expect(screen.getByTestId("nav-history")).toHaveAttribute("aria-current", "page");
  });

  test("a deep link to an unknown request says so", async () => {
    const calls = mockCore({ setup_status: () => setupStatus(), overview: () => overview() });
    render(App);
    await listening(calls);

    await events.openRequest.emit({ id: "nope" });
    const banner = await screen.findByTestId("error-banner");
    expect(banner).toHaveAttribute("data-code", "not_found");
    expect(banner).toHaveTextContent("nope");
  });
});

describe("App start and sign-out", () => {
  test("a deep link that started the app is taken from the core and shown", async () => {
    const calls = mockCore({
      setup_status: () => setupStatus(),
      overview: () => overview({ requests: [request({ id: "r5", status: "expired" })] }),
      pending_link: () => "r5",
    });
    render(App);
    expect(await screen.findByTestId("request-detail")).toHaveAttribute("data-id", "r5");
    expect(calls.filter((c) => c.cmd === "pending_link")).toHaveLength(1);
  });

  test("signing out shows the core's warning and returns to the sign-in page", async () => {
    let signedIn = true;
    const me = { provider: "corp", signed_in: true };
    mockCore({
      setup_status: () => setupStatus({ providers: ["corp"], signed_in: signedIn, admin: false }),
      overview: () => overview({ me: { ...overview().me, ...me } }),
      pending_link: () => null,
      sign_out: () => {
        signedIn = false;
        return "the provider did not confirm that the refresh token was revoked";
      },
    });
    const user = userEvent.setup();
    render(App);

    await user.click(await screen.findByTestId("sign-out"));
    expect(await screen.findByTestId("signout-warning")).toHaveTextContent("refresh token was revoked");
    expect(await screen.findByTestId("signin-start")).toBeInTheDocument();
    expect(screen.queryByTestId("nav-request")).toBeNull();
  });

  test("an error code the UI does not know still shows the core's message", async () => {
    mockCore({
      setup_status: () => setupStatus(),
      overview: () => {
        throw { code: "internal", message: "the command stopped unexpectedly; nothing was changed" };
      },
    });
    render(App);
    const banner = await screen.findByTestId("error-banner");
    expect(banner).toHaveAttribute("data-code", "internal");
    expect(banner).toHaveTextContent("the command stopped unexpectedly; nothing was changed");
  });

  test("a failed background sync shows the severe banner for a log that failed verification", async () => {
    const calls = mockCore({ setup_status: () => setupStatus(), overview: () => overview() });
    render(App);
    await listening(calls);
    await events.syncFailed.emit({
      error: { code: "tampered", message: "the stored log failed verification: the log shrank from 7 to 6 entries" },
    });
    const banner = await screen.findByTestId("error-banner");
    expect(banner).toHaveAttribute("data-code", "tampered");
    expect(banner).toHaveTextContent("The log failed verification");
    expect(banner).toHaveTextContent("the log shrank from 7 to 6 entries");
    expect(banner).toHaveTextContent("Do not rely on what this app shows");
  });

  test("a team member not enrolled yet is shown the key to give an administrator, until enrolled", async () => {
    let current: Overview = overview({ me: me({ name: "dana", to_enrol: "AbCdEf0123456789" }) });
    mockCore({ setup_status: () => setupStatus(), overview: () => current });
    render(App);
    expect(await screen.findByTestId("enrol-command")).toHaveTextContent(
      "breakglass identity add dana --group GROUP --public-key AbCdEf0123456789",
    );
    current = overview({ log_size: 12, me: me({ name: "dana" }) });
    await events.logChanged.emit({ size: 12 });
    await expect.poll(() => screen.queryByTestId("enrol-notice")).toBeNull();
  });
});
