// The app's first reads, taken while the page's script is still being evaluated: main.ts imports
// this module before anything else, so when the page does not carry them the core answers
// (≈ 10 ms) in the time the rest of the UI's code takes to evaluate, rather than after it.
// Nothing else imports it, so tests never start these reads by importing a screen.
import { readFirst } from "./firstReads";

export const early = readFirst();
