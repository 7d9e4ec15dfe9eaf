// The request form's rules, kept apart from its markup so they can be tested directly. The core
// enforces every one of them again; checking here only spares the user a round trip and lets the
// message name the limit that applies.
import type { RequestForm, RequestView, TargetView } from "./bindings";
import { formatSpan } from "./format";

export const REASON_MAX = 500;

export type Cap =
  | { kind: "max"; secs: number; target: string }
  | { kind: "break_glass"; secs: number; target: string }
  /** `left` = the chain's cap minus what it has used; `secs` may be lower still (max_duration). */
  | { kind: "extension"; secs: number; target: string; chainCap: number; used: number; left: number };

/** The longest duration allowed for this request. */
export function durationCap(target: TargetView, breakGlass: boolean, grant: RequestView | null): Cap {
  if (grant) {
    const left = Math.max(0, target.extension_cap_secs - grant.chain_total_secs);
    return {
      kind: "extension",
      // Each request of a chain is also bounded by the target's own maximum.
      secs: Math.min(target.max_duration_secs, left),
      target: target.name,
      chainCap: target.extension_cap_secs,
      used: grant.chain_total_secs,
      left,
    };
  }
  if (breakGlass && target.break_glass_max_secs !== null) {
    return { kind: "break_glass", secs: target.break_glass_max_secs, target: target.name };
  }
  return { kind: "max", secs: target.max_duration_secs, target: target.name };
}

/** How the cap reads beside the duration field. */
export function capLabel(cap: Cap): string {
  switch (cap.kind) {
    case "max":
      return `Maximum ${formatSpan(cap.secs)}`;
    case "break_glass":
      return `Break-glass maximum ${formatSpan(cap.secs)}`;
    case "extension":
      return `Maximum ${formatSpan(cap.secs)}: ${formatSpan(cap.used)} of this grant's ${formatSpan(cap.chainCap)} extension cap used`;
  }
}

/** Why `requested` seconds are too long, naming the limit. */
export function overCapMessage(requested: number, cap: Cap): string {
  const asked = formatSpan(requested);
  switch (cap.kind) {
    case "max":
      return `${asked} exceeds the ${formatSpan(cap.secs)} maximum for ${cap.target}`;
    case "break_glass":
      return `${asked} exceeds the ${formatSpan(cap.secs)} break-glass maximum for ${cap.target}`;
    case "extension":
      if (cap.secs < cap.left) {
        return `${asked} exceeds the ${formatSpan(cap.secs)} maximum for ${cap.target}`;
      }
      return `${asked} exceeds the ${formatSpan(cap.left)} left of the ${formatSpan(cap.chainCap)} extension cap for ${cap.target} (${formatSpan(cap.used)} already used)`;
  }
}

export type FormInput = {
  target: string;
  role: string;
  /** From `<input type=number>`: null when empty or not a number. */
  hours: number | null;
  minutes: number | null;
  reason: string;
  ticket: string;
  breakGlass: boolean;
  /** The grant being extended, or null for a new request. */
  extends: string | null;
  /** The SSH public key pasted in, for a target that grants SSH certificates. */
  sshKey: string;
};

export type Field = "target" | "role" | "duration" | "reason" | "ssh_key";

/** One line such as `ssh-ed25519 AAAA… me@laptop`: what a .pub file holds. */
const SSH_PUBLIC_KEY = /^(ssh-[a-z0-9-]+|ecdsa-sha2-[a-z0-9-]+|sk-[a-z0-9@.-]+) [A-Za-z0-9+/]+=*( [^\r\n]*)?$/;

/** Why `text` is not an SSH public key to certify, or null when it looks like one. */
export function sshKeyProblem(text: string): string | null {
  const key = text.trim();
  if (!key) return "Paste your SSH public key: the contents of your .pub file.";
  if (key.includes("PRIVATE KEY")) return "That is a private key: paste the public one, from your .pub file.";
  if (key.includes("-cert-v01@openssh.com")) return "That is a certificate: paste your public key, from your .pub file.";
  if (!SSH_PUBLIC_KEY.test(key)) return "That is not an SSH public key: paste one line like ssh-ed25519 AAAA… from your .pub file.";
  return null;
}
export type FieldErrors = Partial<Record<Field, string>>;

export type Checked = { errors: FieldErrors; form: RequestForm | null; cap: Cap | null };

function wholeNumber(n: number | null, max = Infinity): n is number {
  return n !== null && Number.isInteger(n) && n >= 0 && n <= max;
}

/** Counts characters as the core does (Unicode scalar values, not UTF-16 units). */
export function charCount(s: string): number {
  return Array.from(s).length;
}

/** An extension already waiting in `grant`'s chain blocks another one. */
export function pendingExtension(grant: RequestView, requests: readonly RequestView[]): RequestView | undefined {
  return requests.find(
    (r) => r.chain === grant.chain && r.id !== grant.id && (r.status === "pending" || r.status === "approved"),
  );
}

export function checkRequest(
  input: FormInput,
  targets: readonly TargetView[],
  requests: readonly RequestView[],
): Checked {
  const errors: FieldErrors = {};
  const grant = input.extends ? (requests.find((r) => r.id === input.extends) ?? null) : null;
  const target = targets.find((t) => t.name === (grant ? grant.target : input.target));

  if (input.extends && (!grant || !grant.mine || grant.status !== "active")) {
    errors.target = "Only an active grant of yours can be extended.";
  } else if (grant && pendingExtension(grant, requests)) {
    errors.target = "An extension of this grant is already waiting for approval.";
  } else if (!target) {
    errors.target = "Choose a target.";
  } else if (!target.can_request) {
    errors.target = `The policy does not let you request ${target.name}.`;
  }

  const role = grant ? grant.role : input.role;
  if (target && !target.roles.includes(role)) errors.role = "Choose a role.";

  const breakGlass = !grant && input.breakGlass;
  if (target && breakGlass && target.break_glass_max_secs === null) {
    errors.target = `${target.name} does not allow break-glass access.`;
  }

  const cap = target ? durationCap(target, breakGlass, grant) : null;
  let seconds = 0;
  if (!wholeNumber(input.hours)) {
    errors.duration = "Hours must be a whole number, 0 or more.";
  } else if (!wholeNumber(input.minutes, 59)) {
    errors.duration = "Minutes must be a whole number from 0 to 59.";
  } else {
    seconds = input.hours * 3600 + input.minutes * 60;
    if (seconds === 0) errors.duration = "Enter a duration longer than zero.";
    else if (cap && cap.kind === "extension" && cap.left === 0)
      errors.duration = `This grant has used its whole ${formatSpan(cap.chainCap)} extension cap for ${cap.target}.`;
    else if (cap && seconds > cap.secs) errors.duration = overCapMessage(seconds, cap);
  }

  const needsKey = target?.needs === "ssh_public_key";
  if (needsKey) {
    const problem = sshKeyProblem(input.sshKey);
    if (problem) errors.ssh_key = problem;
  }

  const reason = input.reason.trim();
  if (!reason) errors.reason = "Give a reason: say why you need this access.";
  else if (charCount(reason) > REASON_MAX)
    errors.reason = `The reason is ${charCount(reason)} characters long; the limit is ${REASON_MAX}.`;

  if (Object.keys(errors).length || !target) return { errors, form: null, cap };
  const ticket = input.ticket.trim();
  return {
    errors,
    cap,
    form: {
      target: target.name,
      role,
      duration_secs: seconds,
      reason,
      ticket: ticket || null,
      break_glass: breakGlass,
      extends: grant ? grant.id : null,
      ssh_public_key: needsKey ? input.sshKey.trim() : null,
    },
  };
}
