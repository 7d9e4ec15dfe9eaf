import { cleanup, render, screen } from "@testing-library/svelte";
import { flushSync, tick } from "svelte";
import { afterEach, beforeEach, describe, expect, test, vi } from "vitest";
import Countdown from "../src/components/Countdown.svelte";
import { clock, TICK_MS } from "../src/lib/clock.svelte";
import { formatRemaining } from "../src/lib/format";
import { NOW } from "./fixtures";

beforeEach(() => {
  vi.useFakeTimers();
  vi.setSystemTime(NOW);
  clock.sync(Date.now());
});

afterEach(async () => {
  cleanup();
  await tick();
  vi.useRealTimers();
});

async function advance(ms: number) {
  await vi.advanceTimersByTimeAsync(ms);
  flushSync();
}

describe("formatRemaining", () => {
  test("writes hh:mm:ss, rounding up, and lets hours pass 24", () => {
    expect(formatRemaining(5 * 60_000)).toBe("00:05:00");
    expect(formatRemaining(239_001)).toBe("00:04:00");
    expect(formatRemaining(500)).toBe("00:00:01");
    expect(formatRemaining(0)).toBe("00:00:00");
    expect(formatRemaining(-5000)).toBe("00:00:00");
    expect(formatRemaining((26 * 3600 + 3 * 60 + 10) * 1000)).toBe("26:03:10");
  });
});

describe("Countdown", () => {
  test("derives the time left from the deadline and the clock", async () => {
    render(Countdown, { deadline: NOW + 5 * 60_000, testid: "c" });
    const c = screen.getByTestId("c");
    expect(c).toHaveTextContent("00:05:00");
    expect(c).toHaveAttribute("data-state", "running");

    await advance(61_000);
    expect(c).toHaveTextContent("00:03:59");
  });

  test("warns, in words and not only colour, within the last five minutes", async () => {
    render(Countdown, { deadline: NOW + 5 * 60_000 + 1000, testid: "c" });
    const c = screen.getByTestId("c");
    expect(c).toHaveAttribute("data-state", "running");
    expect(c).not.toHaveClass("warning");

    await advance(2000);
    expect(c).toHaveAttribute("data-state", "warning");
    expect(c).toHaveClass("warning");
    expect(c).toHaveTextContent(/ending soon/i);
    expect(c.querySelector("svg")).not.toBeNull();
  });

  test("shows 00:00:00 and says expired once past the deadline", async () => {
    render(Countdown, { deadline: NOW + 3000, testid: "c" });
    await advance(10_000);
    const c = screen.getByTestId("c");
    expect(c).toHaveTextContent("00:00:00");
    expect(c).toHaveTextContent(/expired/i);
    expect(c).toHaveAttribute("data-state", "expired");
  });

  test("every countdown shares one interval, which stops when the last one goes", async () => {
    const setSpy = vi.spyOn(globalThis, "setInterval");
    const clearSpy = vi.spyOn(globalThis, "clearInterval");
    const a = render(Countdown, { deadline: NOW + 60_000, testid: "a" });
    const b = render(Countdown, { deadline: NOW + 120_000, testid: "b" });
    render(Countdown, { deadline: NOW + 180_000, testid: "c" });
    await tick();

    expect(setSpy).toHaveBeenCalledTimes(1);
    expect(setSpy.mock.calls[0][1]).toBe(TICK_MS);

    await advance(10_000);
    expect(screen.getByTestId("a")).toHaveTextContent("00:00:50");
    expect(screen.getByTestId("b")).toHaveTextContent("00:01:50");
    expect(setSpy).toHaveBeenCalledTimes(1);

    a.unmount();
    b.unmount();
    await tick();
    expect(clearSpy).not.toHaveBeenCalled();

    cleanup();
    await tick();
    expect(clearSpy).toHaveBeenCalledTimes(1);
    expect(vi.getTimerCount()).toBe(0);

    // A new reader starts it again.
    render(Countdown, { deadline: NOW + 60_000, testid: "d" });
    await tick();
    expect(setSpy).toHaveBeenCalledTimes(2);
  });

  test("corrects for the engine's clock being ahead of this machine's", async () => {
    // The engine says it is a minute later than the local clock does.
    clock.sync(Date.now() + 60_000);
    render(Countdown, { deadline: NOW + 5 * 60_000, testid: "c" });
    expect(screen.getByTestId("c")).toHaveTextContent("00:04:00");

    await advance(1000);
    expect(screen.getByTestId("c")).toHaveTextContent("00:03:59");
  });
});
