// What the app reads from the core before it can show anything: the setup status and the
// overview. The page usually carries them (src-tauri/src/page.rs writes them into index.html
// when the data directory is open), so the first screen needs no round trip at all; otherwise
// both are asked for at once, so a directory that is ready shows its main screen after one round
// trip rather than two. Kept free of Svelte so early.ts can start it before the UI's code runs.
import { api } from "./api";
import type { FirstReads, Overview, SetupStatus } from "./bindings";

export type Reads = Promise<[PromiseSettledResult<SetupStatus>, PromiseSettledResult<Overview>]>;

/** The id of the data block the page carries them in (`FIRST_READS_ID` in page.rs). */
export const FIRST_READS_ID = "breakglass-first-reads";

/**
 * The reads the page carries, taken once: the block leaves the page, so a later start (after the
 * first run, after a sign-in) asks the core afresh.
 */
export function carried(doc: Document = document): FirstReads | null {
  const block = doc.getElementById(FIRST_READS_ID);
  if (!block) return null;
  block.remove();
  try {
    return JSON.parse(block.textContent ?? "") as FirstReads;
  } catch (e) {
    console.error("the page's first reads are unreadable; asking the core", e);
    return null;
  }
}

/** The reads the page carries, or else both asked for at once. Never rejects. */
export function readFirst(): Reads {
  const page = carried();
  if (page) {
    // For the desktop benchmark, which reports how the app's first screen got its data.
    performance.mark("breakglass:first-reads-carried");
    return Promise.resolve([
      { status: "fulfilled", value: page.setup },
      { status: "fulfilled", value: page.overview },
    ]);
  }
  return Promise.allSettled([api.setupStatus(), api.overview()]);
}
