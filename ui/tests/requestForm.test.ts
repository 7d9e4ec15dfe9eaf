import { render, screen, within } from "@testing-library/svelte";
import userEvent from "@testing-library/user-event";
import { describe, expect, test } from "vitest";
import { nav } from "../src/lib/nav.svelte";
import { checkRequest, durationCap, type FormInput } from "../src/lib/requestForm";
import Request from "../src/screens/Request.svelte";
import { mockCore, overview, request, target } from "./fixtures";

const valid: FormInput = {
  target: "prod-db",
  role: "read",
  hours: 1,
  minutes: 0,
  reason: "fix the outage",
  ticket: "",
  breakGlass: false,
  extends: null,
  sshKey: "",
};

describe("checkRequest", () => {
  test("accepts a valid form and trims what it sends", () => {
    const { form, errors } = checkRequest(
      { ...valid, reason: "  fix it  ", ticket: "  INC-1 " },
      [target()],
      [],
    );
    expect(errors).toEqual({});
    expect(form).toEqual({
      target: "prod-db",
      role: "read",
      duration_secs: 3600,
      reason: "fix it",
      ticket: "INC-1",
      break_glass: false,
      extends: null,
      ssh_public_key: null,
    });
  });

  test("asks for an SSH public key where the target certifies one, and only there", () => {
    const bastion = target({ name: "prod-db", connector: "ssh", enforces_expiry: true, needs: "ssh_public_key" });
    const key = "ssh-ed25519 AAAAC3NzaC1lZDI1NTE5AAAAIDGk me@laptop";
    expect(checkRequest(valid, [bastion], []).errors.ssh_key).toMatch(/paste your ssh public key/i);
    expect(checkRequest({ ...valid, sshKey: "-----BEGIN OPENSSH PRIVATE KEY-----" }, [bastion], []).errors.ssh_key).toMatch(
      /private key/i,
    );
    expect(
      checkRequest({ ...valid, sshKey: "ssh-ed25519-cert-v01@openssh.com AAAA me" }, [bastion], []).errors.ssh_key,
    ).toMatch(/certificate/i);
    expect(checkRequest({ ...valid, sshKey: "hello world" }, [bastion], []).errors.ssh_key).toMatch(/not an ssh public key/i);
    expect(checkRequest({ ...valid, sshKey: `${key}\n${key}` }, [bastion], []).errors.ssh_key).toMatch(/not an ssh/i);
    const ok = checkRequest({ ...valid, sshKey: `  ${key}\n` }, [bastion], []);
    expect(ok.errors).toEqual({});
    expect(ok.form?.ssh_public_key).toBe(key);
    // A key typed in for another target is not sent.
    expect(checkRequest({ ...valid, sshKey: key }, [target()], []).form?.ssh_public_key).toBeNull();
  });

  test("refuses an empty or whitespace-only reason, and one over 500 characters", () => {
    expect(checkRequest({ ...valid, reason: "   " }, [target()], []).errors.reason).toMatch(/give a reason/i);
    expect(checkRequest({ ...valid, reason: "x".repeat(501) }, [target()], []).errors.reason).toMatch(
      /501 characters.*limit is 500/,
    );
    expect(checkRequest({ ...valid, reason: "é".repeat(500) }, [target()], []).errors.reason).toBeUndefined();
  });

  test("names the cap a duration exceeds", () => {
    const { errors, form } = checkRequest({ ...valid, hours: 4 }, [target()], []);
    expect(form).toBeNull();
    expect(errors.duration).toBe("4h exceeds the 2h maximum for prod-db");
  });

  test("break-glass has its own, shorter cap", () => {
    const t = target();
    expect(durationCap(t, true, null)).toMatchObject({ kind: "break_glass", secs: 1800 });
    expect(checkRequest({ ...valid, breakGlass: true }, [t], []).errors.duration).toBe(
      "1h exceeds the 30m break-glass maximum for prod-db",
    );
    expect(checkRequest({ ...valid, breakGlass: true, hours: 0, minutes: 30 }, [t], []).form?.break_glass).toBe(true);
  });

  test("an extension is capped by the chain's cap minus what the chain has used", () => {
    const t = target({ max_duration_secs: 2 * 3600, extension_cap_secs: 3 * 3600 });
    const grant = request({ id: "g1", status: "active", mine: true, chain_total_secs: 9000 });
    expect(durationCap(t, false, grant)).toMatchObject({ kind: "extension", secs: 1800, left: 1800 });

    const over = checkRequest({ ...valid, extends: "g1", minutes: 0, hours: 1 }, [t], [grant]);
    expect(over.errors.duration).toBe(
      "1h exceeds the 30m left of the 3h extension cap for prod-db (2h 30m already used)",
    );
    const ok = checkRequest({ ...valid, extends: "g1", hours: 0, minutes: 30, breakGlass: true }, [t], [grant]);
    expect(ok.form).toMatchObject({ extends: "g1", duration_secs: 1800, break_glass: false, target: "prod-db" });

    // ...and never above the target's own maximum.
    const young = request({ id: "g2", status: "active", mine: true, chain_total_secs: 1800 });
    expect(durationCap(t, false, young).secs).toBe(7200);
  });

  test("refuses a second extension while one is waiting", () => {
    const grant = request({ id: "g1", status: "active", mine: true });
    const waiting = request({ id: "e1", status: "pending", mine: true, chain: "g1", extends: "g1" });
    const { errors } = checkRequest({ ...valid, extends: "g1" }, [target()], [grant, waiting]);
    expect(errors.target).toMatch(/already waiting/);
  });

  test("refuses a zero or malformed duration", () => {
    expect(checkRequest({ ...valid, hours: 0, minutes: 0 }, [target()], []).errors.duration).toMatch(/longer than zero/);
    expect(checkRequest({ ...valid, minutes: 75 }, [target()], []).errors.duration).toMatch(/0 to 59/);
    expect(checkRequest({ ...valid, hours: null }, [target()], []).errors.duration).toMatch(/whole number/);
    expect(checkRequest({ ...valid, hours: 1.5 }, [target()], []).errors.duration).toMatch(/whole number/);
  });
});

describe("Request screen", () => {
  async function fill(user: ReturnType<typeof userEvent.setup>, f: { hours?: string; minutes?: string; reason?: string; ticket?: string }) {
    if (f.hours !== undefined) {
      await user.clear(screen.getByTestId("req-duration-hours"));
      await user.type(screen.getByTestId("req-duration-hours"), f.hours);
    }
    if (f.minutes !== undefined) {
      await user.clear(screen.getByTestId("req-duration-minutes"));
      await user.type(screen.getByTestId("req-duration-minutes"), f.minutes);
    }
    if (f.reason !== undefined) await user.type(screen.getByTestId("req-reason"), f.reason);
    if (f.ticket !== undefined) await user.type(screen.getByTestId("req-ticket"), f.ticket);
  }

  test("an empty reason is refused with a message, and nothing is sent", async () => {
    const calls = mockCore({});
    const user = userEvent.setup();
    render(Request, { overview: overview() });

    await fill(user, { hours: "1", minutes: "0", reason: "   " });
    await user.click(screen.getByTestId("req-submit"));

    expect(screen.getByTestId("req-error")).toHaveTextContent(/give a reason/i);
    expect(screen.getByTestId("req-reason")).toHaveAttribute("aria-invalid", "true");
    expect(calls.filter((c) => c.cmd === "request_access")).toHaveLength(0);
  });

  test("an SSH target asks for the public key and sends it; other targets do not show the field", async () => {
    const calls = mockCore({ request_access: () => ({ request: request({ status: "pending" }), warning: null, credential: null }) });
    const user = userEvent.setup();
    const bastion = target({ name: "bastion", connector: "ssh", enforces_expiry: true, needs: "ssh_public_key" });
    render(Request, { overview: overview({ targets: [target(), bastion] }) });

    await user.selectOptions(screen.getByTestId("req-target"), "prod-db");
    expect(screen.queryByTestId("req-ssh-key")).toBeNull();
    await user.selectOptions(screen.getByTestId("req-target"), "bastion");
    await fill(user, { hours: "1", minutes: "0", reason: "rotate the disk" });
    await user.click(screen.getByTestId("req-submit"));
    expect(screen.getByTestId("req-error")).toHaveTextContent(/paste your ssh public key/i);
    expect(screen.getByTestId("req-ssh-key")).toHaveAttribute("aria-invalid", "true");
    expect(calls.filter((c) => c.cmd === "request_access")).toHaveLength(0);

    const key = "ssh-ed25519 AAAAC3NzaC1lZDI1NTE5AAAAIDGk me@laptop";
    await user.type(screen.getByTestId("req-ssh-key"), key);
    await user.click(screen.getByTestId("req-submit"));
    const sent = calls.filter((c) => c.cmd === "request_access");
    expect(sent).toHaveLength(1);
    expect((sent[0].args as { form: { ssh_public_key: string } }).form.ssh_public_key).toBe(key);
  });

  test("a database target says a password will be made and shown once", async () => {
    mockCore({});
    const user = userEvent.setup();
    const db = target({ name: "reports", connector: "postgres", enforces_expiry: true, needs: "database_password" });
    render(Request, { overview: overview({ targets: [target(), db] }) });
    await user.selectOptions(screen.getByTestId("req-target"), "reports");
    expect(screen.getByTestId("req-password-note")).toHaveTextContent(/shown\s+once/);
    expect(screen.queryByTestId("req-ssh-key")).toBeNull();
  });

  test("a duration over the cap is refused, naming the cap", async () => {
    const calls = mockCore({});
    const user = userEvent.setup();
    render(Request, { overview: overview() });

    await fill(user, { hours: "4", minutes: "0", reason: "big migration" });
    // Shown as soon as the duration is edited, not only on submit.
    expect(screen.getByTestId("req-duration-error")).toHaveTextContent("4h exceeds the 2h maximum for prod-db");
    await user.click(screen.getByTestId("req-submit"));
    expect(screen.getByTestId("req-error")).toHaveTextContent("4h exceeds the 2h maximum for prod-db");
    expect(calls.filter((c) => c.cmd === "request_access")).toHaveLength(0);
  });

  test("break-glass switches the cap and shows what it triggers", async () => {
    mockCore({});
    const user = userEvent.setup();
    render(Request, { overview: overview() });

    expect(screen.getByTestId("req-cap")).toHaveTextContent("Maximum 2h");
    expect(screen.queryByTestId("req-breakglass-warning")).toBeNull();

    await user.click(screen.getByTestId("req-breakglass"));
    const warning = screen.getByTestId("req-breakglass-warning");
    expect(warning).toHaveTextContent(/without approval/i);
    expect(warning).toHaveTextContent(/alerts every approver/i);
    expect(warning).toHaveTextContent(/review owed/i);
    expect(warning).toHaveTextContent(/30m/);
    expect(screen.getByTestId("req-cap")).toHaveTextContent("Break-glass maximum 30m");
    expect(screen.getByTestId("req-submit")).toHaveTextContent(/activate break-glass/i);

    await fill(user, { hours: "1", minutes: "0" });
    expect(screen.getByTestId("req-duration-error")).toHaveTextContent(
      "1h exceeds the 30m break-glass maximum for prod-db",
    );
  });

  test("break-glass is not offered where the policy does not allow it", () => {
    mockCore({});
    render(Request, { overview: overview({ targets: [target({ break_glass_max_secs: null })] }) });
    expect(screen.queryByTestId("req-breakglass")).toBeNull();
  });

  test("extension mode fixes the target and caps by what the chain has left", async () => {
    mockCore({});
    const user = userEvent.setup();
    const grant = request({
      id: "g1",
      status: "active",
      mine: true,
      role: "admin",
      chain_total_secs: 9000,
      deadline_ms: Date.now() + 3600_000,
    });
    nav.go("request", { extend: "g1" });
    render(Request, { overview: overview({ requests: [grant] }) });

    expect(screen.getByTestId("req-target")).toBeDisabled();
    expect(screen.getByTestId("req-role")).toHaveValue("admin");
    expect(screen.queryByTestId("req-breakglass")).toBeNull();
    expect(screen.getByTestId("req-cap")).toHaveTextContent("Maximum 30m: 2h 30m of this grant's 3h extension cap used");

    await fill(user, { hours: "1", minutes: "0" });
    expect(screen.getByTestId("req-duration-error")).toHaveTextContent(
      "1h exceeds the 30m left of the 3h extension cap for prod-db (2h 30m already used)",
    );
  });

  test("submitting sends the RequestForm and shows the result and the credential once", async () => {
    const granted = request({ id: "r9", status: "active", mine: true, deadline_ms: Date.now() + 1800_000, role: "admin" });
    const calls = mockCore({
      request_access: () => ({
        request: granted,
        warning: "the connector was slow",
        credential: { label: "Database password", value: "s3cret" },
      }),
    });
    const user = userEvent.setup();
    render(Request, { overview: overview() });

    await user.selectOptions(screen.getByTestId("req-target"), "prod-db");
    await user.selectOptions(screen.getByTestId("req-role"), "admin");
    await fill(user, { hours: "0", minutes: "45", reason: "  restore backup  ", ticket: "INC-7" });
    await user.click(screen.getByTestId("req-submit"));

    const sent = calls.filter((c) => c.cmd === "request_access");
    expect(sent).toHaveLength(1);
    expect(sent[0].args).toEqual({
      form: {
        target: "prod-db",
        role: "admin",
        duration_secs: 45 * 60,
        reason: "restore backup",
        ticket: "INC-7",
        break_glass: false,
        extends: null,
        ssh_public_key: null,
      },
    });

    const result = await screen.findByTestId("req-result");
    expect(result).toHaveAttribute("data-status", "active");
    expect(within(result).getByText(/the connector was slow/)).toBeInTheDocument();
    expect(screen.getByTestId("credential-value")).toHaveTextContent("s3cret");
    // The form is cleared so the same request is not sent twice.
    expect(screen.getByTestId("req-reason")).toHaveValue("");

    await user.click(screen.getByTestId("credential-dismiss"));
    expect(screen.queryByTestId("credential")).toBeNull();
    expect(document.body.textContent).not.toContain("s3cret");
  });

  test("a refusal from the core is shown beside the form with its code", async () => {
    mockCore({
      request_access: () => {
        throw { code: "refused", message: "you are not allowed to request prod-db" };
      },
    });
    const user = userEvent.setup();
    render(Request, { overview: overview() });
    await fill(user, { reason: "need it" });
    await user.click(screen.getByTestId("req-submit"));

    const error = await screen.findByTestId("req-error");
    expect(error).toHaveAttribute("data-code", "refused");
    expect(error).toHaveTextContent("you are not allowed to request prod-db");
  });
});
