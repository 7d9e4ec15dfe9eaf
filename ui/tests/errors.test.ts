import { render, screen } from "@testing-library/svelte";
import userEvent from "@testing-library/user-event";
import { describe, expect, test, vi } from "vitest";
import App from "../src/App.svelte";
import { api, ApiError } from "../src/lib/api";
import { GENERIC_MESSAGE } from "../src/lib/errors.svelte";
import { mockCore, overview, request, setupStatus } from "./fixtures";

describe("api", () => {
  test("unwraps results and turns an AppError into an ApiError with its code", async () => {
    mockCore({
      overview: () => overview({ log_size: 7 }),
      cancel: () => {
        throw { code: "refused", message: "only the requester can withdraw" };
      },
    });
    expect((await api.overview()).log_size).toBe(7);
    const e = await api.cancel("r1").catch((x: unknown) => x);
    expect(e).toBeInstanceOf(ApiError);
    expect(e).toMatchObject({ code: "refused", message: "only the requester can withdraw" });
  });

  test("a rejection that is not an AppError is not passed off as one", async () => {
    mockCore({
      overview: () => {
        throw "command overview not allowed by ACL";
      },
    });
    const e = await api.overview().catch((x: unknown) => x);
    expect(e).toBeInstanceOf(Error);
    expect(e).not.toBeInstanceOf(ApiError);
  });
});

describe("error banner", () => {
  test("a refusal shows the core's message with its code", async () => {
    const pending = request({ id: "r1", can_decide: true });
    mockCore({
      setup_status: () => setupStatus(),
      overview: () => overview({ requests: [pending] }),
      approve: () => {
        throw { code: "refused", message: "you already approved r1" };
      },
    });
    const user = userEvent.setup();
    render(App);

    await user.click(await screen.findByTestId("nav-approvals"));
    await user.click(await screen.findByTestId("approve-r1"));

    const banner = await screen.findByTestId("error-banner");
    expect(banner).toHaveAttribute("data-code", "refused");
    expect(banner).toHaveTextContent("you already approved r1");
    expect(banner.closest("[role=alert]")).not.toBeNull();

    await user.click(screen.getByRole("button", { name: "Dismiss" }));
    expect(screen.queryByTestId("error-banner")).toBeNull();
  });

  test("an unexpected error shows a generic message, never its text or stack", async () => {
    const consoleError = vi.spyOn(console, "error").mockImplementation(() => {});
    mockCore({
      setup_status: () => setupStatus(),
      overview: () => {
        throw new TypeError("Cannot read properties of undefined (reading 'x')\n    at secret.js:1:1");
      },
    });
    render(App);

    const banner = await screen.findByTestId("error-banner");
    expect(banner).toHaveAttribute("data-code", "unexpected");
    expect(banner).toHaveTextContent(GENERIC_MESSAGE);
    expect(banner.textContent).not.toMatch(/Cannot read|secret\.js|TypeError/);
    // The details go to the console, for whoever debugs it.
    expect(consoleError).toHaveBeenCalled();
  });

  test("a failure to read the setup offers to try again", async () => {
    let fail = true;
    mockCore({
      setup_status: () => {
        if (fail) throw { code: "storage", message: "the data folder is not readable" };
        return setupStatus({ initialised: false, has_policy: false, me: null });
      },
    });
    const user = userEvent.setup();
    render(App);

    const banner = await screen.findByTestId("error-banner");
    expect(banner).toHaveAttribute("data-code", "storage");
    expect(banner).toHaveTextContent("the data folder is not readable");

    fail = false;
    await user.click(screen.getByRole("button", { name: "Try again" }));
    expect(await screen.findByTestId("setup-admin")).toBeInTheDocument();
  });
});
