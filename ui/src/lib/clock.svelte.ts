// The app's one clock. Every countdown derives `deadline - clock.now` instead of decrementing a
// counter of its own, so all of them agree, none drifts, and a sleeping laptop shows the right
// time the moment it wakes. One interval serves every reader: it starts when the first component
// that reads `now` mounts and stops when the last one goes.
import { createSubscriber } from "svelte/reactivity";

/** Often enough that a seconds display never lags visibly, cheap enough to ignore. */
export const TICK_MS = 250;

class Clock {
  /** Engine time minus local time, so deadlines stamped by the engine count down truly. */
  #offset = 0;
  #now = $state(Date.now());

  #subscribe = createSubscriber(() => {
    this.#tick();
    const id = setInterval(() => this.#tick(), TICK_MS);
    return () => clearInterval(id);
  });

  /** Local midnight of the current day: changes once a day, so what reads it re-renders once a day. */
  #today = $derived(startOfDay(this.#now));

  #tick() {
    this.#now = Date.now() + this.#offset;
  }

  /** The current time in engine milliseconds; reactive while read inside an effect or template. */
  get now(): number {
    this.#subscribe();
    return this.#now;
  }

  /**
   * The start of the current local day, in engine milliseconds. For what depends on the day
   * only (a moment written with or without its date), so it is not recomputed on every tick.
   */
  get today(): number {
    this.#subscribe();
    return this.#today;
  }

  /** Aligns with the engine's clock (from `overview().now_ms`, read just now). */
  sync(engineNowMs: number) {
    this.#offset = engineNowMs - Date.now();
    this.#tick();
  }
}

function startOfDay(ms: number): number {
  const d = new Date(ms);
  d.setHours(0, 0, 0, 0);
  return d.getTime();
}

export const clock = new Clock();
