import "@testing-library/jest-dom/vitest";
import { clearMocks, mockWindows } from "@tauri-apps/api/mocks";
import { cleanup } from "@testing-library/svelte";
import { afterEach, beforeEach } from "vitest";
import { core } from "../src/lib/core.svelte";
import { banner } from "../src/lib/errors.svelte";
import { FIRST_READS_ID } from "../src/lib/firstReads";
import { nav } from "../src/lib/nav.svelte";

// jsdom does no layout.
Element.prototype.scrollIntoView ??= function () {};

// The app runs in Tauri's "main" webview; window and webview APIs need to know that.
beforeEach(() => mockWindows("main"));

afterEach(async () => {
  // Unmount before the mocked IPC goes: components unlisten from events as they unmount, and
  // listeners still being registered finish (and are then dropped) on the next task.
  cleanup();
  await new Promise((resolve) => setTimeout(resolve, 0));
  clearMocks();
  // The app's singletons outlive a test; start every test from nothing.
  banner.clear();
  document.getElementById(FIRST_READS_ID)?.remove();
  core.setup = null;
  core.overview = null;
  core.signInSkipped = false;
  nav.go("request");
});
