import { render, screen, within } from "@testing-library/svelte";
import userEvent from "@testing-library/user-event";
import { describe, expect, test } from "vitest";
import App from "../src/App.svelte";
import { events, type Discovery, type SetupStatus } from "../src/lib/bindings";
import { mockCore, overview, setupStatus } from "./fixtures";

const discovery: Discovery = {
  issuer: "https://login.corp.example",
  authorization_endpoint: "https://login.corp.example/authorize",
  token_endpoint: "https://login.corp.example/token",
  device_authorization_endpoint: null,
  jwks_uri: "https://login.corp.example/jwks",
  revocation_endpoint: null,
  introspection_endpoint: null,
  scopes_supported: ["openid", "groups"],
  pkce_s256: true,
  device_flow: false,
};

const DRAFT = 'version = 1\n\n[targets.demo]\nmax_duration = "1h"\n\n[providers.corp]\nissuer = "https://login.corp.example"\n';

describe("First run", () => {
  test("walks from an empty data folder through provider, policy and sign-in", async () => {
    let status: SetupStatus = setupStatus({ initialised: false, has_policy: false, me: null, admin: false });
    const calls = mockCore({
      setup_status: () => status,
      init_data_dir: (a) => (status = { ...status, initialised: true, me: a.admin as string, admin: true }),
      discover_provider: () => discovery,
      draft_policy: () => DRAFT,
      check_policy: (a) =>
        (a.source as string).includes("max_duration = \"1h\"")
          ? [{ line: 4, column: 16, message: "max_duration exceeds extension_cap" }]
          : [],
      apply_policy: () => (status = { ...status, has_policy: true, providers: ["corp"] }),
      sign_in: async () => {
        await events.signInPrompt.emit({ url: "https://login.corp.example/authorize?x=1", user_code: null, verification_uri: null });
        return new Promise(() => {});
      },
    });
    const user = userEvent.setup();
    render(App);

    // (a) data folder
    expect(await screen.findByTestId("setup-dir")).toHaveValue("/home/alice/.local/share/breakglass");
    await user.click(screen.getByTestId("setup-create"));
    expect(screen.getByTestId("setup-admin")).toHaveAttribute("aria-invalid", "true");
    await user.type(screen.getByTestId("setup-admin"), "alice");
    await user.click(screen.getByTestId("setup-create"));
    expect(calls.find((c) => c.cmd === "init_data_dir")?.args).toEqual({ dir: null, admin: "alice" });

    // (b) identity provider
    await user.type(await screen.findByTestId("setup-issuer"), "https://login.corp.example");
    await user.click(screen.getByTestId("setup-discover"));
    const shown = await screen.findByTestId("setup-discovery");
    expect(shown).toHaveTextContent("https://login.corp.example/token");
    expect(within(shown).getByTestId("setup-pkce")).toHaveTextContent("Yes");
    expect(within(shown).getByTestId("setup-device-flow")).toHaveTextContent("No");
    expect(screen.getByTestId("setup-provider-name")).toHaveValue("corp");
    await user.click(screen.getByTestId("setup-provider-next"));
    expect(screen.getByTestId("setup-client-id")).toHaveAttribute("aria-invalid", "true");
    await user.type(screen.getByTestId("setup-client-id"), "breakglass-desktop");
    await user.click(screen.getByTestId("setup-provider-next"));
    expect(calls.find((c) => c.cmd === "draft_policy")?.args).toEqual({
      provider: { name: "corp", issuer: "https://login.corp.example", client_id: "breakglass-desktop" },
    });

    // (c) policy: problems listed with line:column and marked in the gutter
    const editor = await screen.findByTestId("policy-editor");
    expect(editor).toHaveValue(DRAFT);
    await user.click(screen.getByTestId("policy-check"));
    const problems = await screen.findByTestId("policy-problems");
    expect(problems).toHaveTextContent("Line 4:16");
    expect(problems).toHaveTextContent("max_duration exceeds extension_cap");
    expect(document.querySelector('.gutter [data-line="4"]')).toHaveClass("bad");
    expect(document.querySelector('.gutter [data-line="3"]')).not.toHaveClass("bad");

    // Apply re-checks first and refuses while problems remain.
    await user.click(screen.getByTestId("policy-apply"));
    expect(calls.filter((c) => c.cmd === "apply_policy")).toHaveLength(0);

    await user.clear(editor);
    await user.type(editor, 'version = 1{enter}max_duration = "30m"');
    await user.click(screen.getByTestId("policy-apply"));
    expect(calls.filter((c) => c.cmd === "apply_policy")).toHaveLength(1);

    // (d) sign in: the address to open by hand; no device option, as discovery said
    await user.click(await screen.findByTestId("signin-start"));
    expect(calls.find((c) => c.cmd === "sign_in")?.args).toEqual({ provider: "corp", device: false });
    expect(await screen.findByTestId("signin-url")).toHaveTextContent("https://login.corp.example/authorize?x=1");
    expect(screen.queryByTestId("signin-device")).toBeNull();
  });

  test("skipping the provider drafts a policy without one and then runs as the local administrator", async () => {
    let status: SetupStatus = setupStatus({ has_policy: false });
    const calls = mockCore({
      setup_status: () => status,
      draft_policy: () => "version = 1\n",
      check_policy: () => [],
      apply_policy: () => (status = { ...status, has_policy: true, providers: [] }),
      overview: () => overview(),
    });
    const user = userEvent.setup();
    render(App);

    await user.click(await screen.findByTestId("setup-skip-provider"));
    expect(calls.find((c) => c.cmd === "draft_policy")?.args).toEqual({ provider: null });
    await user.click(await screen.findByTestId("policy-apply"));
    expect(await screen.findByTestId("nav-request")).toBeInTheDocument();
    expect(screen.queryByTestId("signin-start")).toBeNull();
  });

  test("the device flow shows its code big", async () => {
    mockCore({
      setup_status: () => setupStatus({ providers: ["corp"], signed_in: false, admin: false }),
      sign_in: async (a) => {
        if (a.device)
          await events.signInPrompt.emit({ url: null, user_code: "WDJB-MJHT", verification_uri: "https://login.corp.example/device" });
        return new Promise(() => {});
      },
    });
    const user = userEvent.setup();
    render(App);

    await user.click(await screen.findByTestId("signin-device"));
    expect(await screen.findByTestId("signin-code")).toHaveTextContent("WDJB-MJHT");
    expect(screen.getByText("https://login.corp.example/device")).toBeInTheDocument();
    expect(screen.queryByTestId("signin-skip")).toBeNull();
  });

  test("joins a team's log: every field is required, and the join opens the main screens", async () => {
    let status: SetupStatus = setupStatus({ initialised: false, has_policy: false, me: null, admin: false });
    const calls = mockCore({
      setup_status: () => status,
      join_team: () => (status = { ...status, initialised: true, has_policy: true, me: "dana" }),
      overview: () => overview(),
    });
    const user = userEvent.setup();
    render(App);

    await user.click(await screen.findByTestId("setup-join"));
    for (const field of ["setup-join-db", "setup-join-key", "setup-join-name"]) {
      expect(screen.getByTestId(field)).toHaveAttribute("aria-invalid", "true");
    }
    expect(calls.filter((c) => c.cmd === "join_team")).toHaveLength(0);

    await user.type(screen.getByTestId("setup-join-db"), " postgres://app@db.example/breakglass ");
    await user.type(screen.getByTestId("setup-join-key"), "breakglass.local/abc+01234567+AAAA");
    await user.type(screen.getByTestId("setup-join-name"), "dana");
    await user.click(screen.getByTestId("setup-join"));
    expect(calls.find((c) => c.cmd === "join_team")?.args).toEqual({
      dir: null,
      form: { database: "postgres://app@db.example/breakglass", log_key: "breakglass.local/abc+01234567+AAAA", name: "dana" },
    });
    expect(await screen.findByTestId("screen")).toBeInTheDocument();
  });
});
