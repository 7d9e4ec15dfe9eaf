// First: starts the core's first reads before the rest of the UI's code is evaluated.
import { early } from "./lib/early";
import { mount } from "svelte";
import "./app.css";
import App from "./App.svelte";
import { core } from "./lib/core.svelte";

const target = document.getElementById("app");
if (!target) throw new Error("index.html has no #app element");

const started = core.prefetched(early);
// Mount once the first reads are applied, so the first frame drawn is the first screen, rendered
// in one pass, rather than "Starting…" followed a frame later by the screen. The reads are usually
// in the page itself, or else the core answers within a few ms of the script loading; one with a
// long log to verify takes longer to open, and then the window shows "Starting…" after
// STARTING_AFTER_MS rather than staying blank. A failed start is the App's to show (its start()
// takes this same promise).
const STARTING_AFTER_MS = 150;
await Promise.race([started.catch(() => undefined), new Promise((r) => setTimeout(r, STARTING_AFTER_MS))]);

export default mount(App, { target });
