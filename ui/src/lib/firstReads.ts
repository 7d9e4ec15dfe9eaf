// What the app reads from the core before it can show anything: the setup status and, at the
// same time, the overview, so a directory that is ready shows its main screen after one round
// trip rather than two. Kept free of Svelte so early.ts can start it before the UI's code runs.
import { api } from "./api";
import type { Overview, SetupStatus } from "./bindings";

export type FirstReads = Promise<[PromiseSettledResult<SetupStatus>, PromiseSettledResult<Overview>]>;

/** Asks for both at once. Never rejects: each read settles on its own. */
export function readFirst(): FirstReads {
  return Promise.allSettled([api.setupStatus(), api.overview()]);
}
