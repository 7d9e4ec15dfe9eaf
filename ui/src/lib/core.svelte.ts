// The UI's view of the core: the last setup status and overview it returned, nothing else. Every
// screen derives what it shows from these; after any command, and whenever the core says the log
// changed, they are read again.
import { api, ApiError } from "./api";
import type { Overview, SetupStatus } from "./bindings";
import { clock } from "./clock.svelte";
import { readFirst, type Reads } from "./firstReads";
import { banner } from "./errors.svelte";

/** Whether the main screens may show, or the first run must finish first. */
export function setupComplete(s: SetupStatus, signInSkipped: boolean): boolean {
  return s.initialised && s.has_policy && (s.providers.length === 0 || s.signed_in || signInSkipped);
}

class Core {
  setup = $state.raw<SetupStatus | null>(null);
  overview = $state.raw<Overview | null>(null);
  /**
   * The local administrator chose to go on without a provider sign-in. Kept for this run of the
   * app only: the next start asks again.
   */
  signInSkipped = $state(false);

  #inflight: Promise<void> | null = null;
  #again = false;

  get ready(): boolean {
    return this.setup !== null && setupComplete(this.setup, this.signInSkipped);
  }

  /** The start main.ts began with reads taken ahead of the UI; the next start() takes it. */
  #starting: Promise<SetupStatus> | null = null;
  /** start() read the overview and nothing has shown it yet (see takeStartOverview). */
  #startOverview = false;

  /** Starts with reads taken ahead of the UI; settles once they are applied (or failed). */
  prefetched(reads: Reads): Promise<SetupStatus> {
    const starting = this.#apply(reads);
    this.#starting = starting;
    return starting;
  }

  /**
   * The app's start: the setup status and the overview, read together (or the start main.ts
   * began). The overview is kept only when the setup says the main screens may show.
   */
  async start(): Promise<SetupStatus> {
    const starting = this.#starting;
    this.#starting = null;
    return starting ?? this.#apply(readFirst());
  }

  async #apply(reads: Reads): Promise<SetupStatus> {
    const [setup, overview] = await reads;
    if (setup.status === "rejected") throw setup.reason;
    this.#startOverview = false;
    if (overview.status === "fulfilled" && setupComplete(setup.value, this.signInSkipped)) {
      clock.sync(overview.value.now_ms);
      this.overview = overview.value;
      this.#startOverview = true;
    }
    this.setup = setup.value;
    return setup.value;
  }

  /**
   * Whether the overview on hand is the one start() just read, so entering the main screens
   * need not read it again. True once: later entries (after the first run, after a sign-in)
   * read afresh.
   */
  takeStartOverview(): boolean {
    const fresh = this.#startOverview;
    this.#startOverview = false;
    return fresh;
  }

  async loadSetup(): Promise<SetupStatus> {
    const s = await api.setupStatus();
    this.setup = s;
    return s;
  }

  /**
   * Reads the overview again. Calls made while a read is running (a burst of log-changed events)
   * fold into one more read after it, so the last state always wins and reads never pile up.
   */
  refresh(): Promise<void> {
    if (this.#inflight) {
      this.#again = true;
      return this.#inflight;
    }
    this.#inflight = (async () => {
      try {
        do {
          this.#again = false;
          const o = await api.overview();
          clock.sync(o.now_ms);
          this.overview = o;
        } while (this.#again);
      } finally {
        this.#inflight = null;
      }
    })();
    return this.#inflight;
  }

  /** Refreshes, reporting a failure in the banner instead of throwing. */
  async refreshQuietly(): Promise<void> {
    if (!this.ready) return;
    try {
      await this.refresh();
    } catch (e) {
      report(e);
    }
  }
}

export const core = new Core();

/** Shows a failure in the banner; a core that lost its setup sends the app back to the first run. */
export function report(e: unknown) {
  banner.show(e);
  if (e instanceof ApiError && e.code === "setup_required") {
    core.loadSetup().catch(() => {});
  }
}

/**
 * Runs one command for a screen: a failure goes to the banner (and yields undefined), success
 * clears a stale banner, and either way the overview is read again, since even a refused command
 * may have recorded something.
 */
export async function act<T>(command: () => Promise<T>): Promise<T | undefined> {
  try {
    const result = await command();
    banner.clear();
    return result;
  } catch (e) {
    report(e);
    return undefined;
  } finally {
    void core.refreshQuietly();
  }
}
