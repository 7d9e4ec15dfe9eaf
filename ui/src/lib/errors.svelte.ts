// What the global error banner shows. Only the core's own messages reach people: anything else is a
// bug, logged to the console for whoever debugs it and summarised without a stack trace.
import { ApiError } from "./api";
import type { Code } from "./bindings";

export type Shown = { code: Code | "unexpected"; title: string; message: string };

const TITLES: Partial<Record<string, string>> = {
  refused: "Refused",
  invalid_input: "Invalid input",
  not_found: "Not found",
  tampered: "The log failed verification",
  storage: "Storage error",
  key: "Signing key problem",
  connector: "Connector error",
  identity_provider: "Identity provider error",
  setup_required: "Setup required",
  internal: "Internal error",
};

export const GENERIC_MESSAGE =
  "Something went wrong inside the app. Try again; if it keeps happening, restart Breakglass.";

/** Turns anything thrown into what may be shown. */
export function describe(e: unknown): Shown {
  if (e instanceof ApiError) return { code: e.code, title: TITLES[e.code] ?? "Error", message: e.message };
  console.error(e);
  return { code: "unexpected", title: "Unexpected error", message: GENERIC_MESSAGE };
}

class Banner {
  current = $state<Shown | null>(null);

  show(e: unknown): Shown {
    const shown = describe(e);
    this.current = shown;
    return shown;
  }

  clear() {
    this.current = null;
  }
}

export const banner = new Banner();
