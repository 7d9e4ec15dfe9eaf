import { flushSync } from "svelte";
import { afterEach, beforeEach, expect, test, vi } from "vitest";
import { clock } from "../src/lib/clock.svelte";
import { formatMoment } from "../src/lib/format";

beforeEach(() => {
  vi.useFakeTimers();
});

afterEach(() => {
  vi.useRealTimers();
});

test("today changes at local midnight only, however often the clock ticks", async () => {
  vi.setSystemTime(new Date(2026, 0, 15, 23, 59, 57));
  clock.sync(Date.now());
  const seen: number[] = [];
  let nows = 0;
  const stop = $effect.root(() => {
    $effect(() => {
      seen.push(clock.today);
    });
    $effect(() => {
      void clock.now;
      nows++;
    });
  });
  flushSync();
  await vi.advanceTimersByTimeAsync(2000);
  flushSync();
  // The clock ticked several times; what reads only the day was not run again.
  expect(nows).toBeGreaterThan(4);
  expect(seen).toEqual([new Date(2026, 0, 15).getTime()]);

  await vi.advanceTimersByTimeAsync(2000);
  flushSync();
  expect(seen).toEqual([new Date(2026, 0, 15).getTime(), new Date(2026, 0, 16).getTime()]);
  stop();
});

test("a moment is written the same whether given now or the start of today", () => {
  const now = new Date(2026, 0, 15, 15, 30).getTime();
  const today = new Date(2026, 0, 15).getTime();
  const laterToday = new Date(2026, 0, 15, 18, 5).getTime();
  const tomorrow = new Date(2026, 0, 16, 9, 0).getTime();
  expect(formatMoment(laterToday, today)).toBe(formatMoment(laterToday, now));
  expect(formatMoment(tomorrow, today)).toBe(formatMoment(tomorrow, now));
  // Seen from today, tomorrow's moment carries its day; seen from tomorrow, only its time.
  expect(formatMoment(tomorrow, today)).not.toBe(formatMoment(tomorrow, tomorrow));
});
