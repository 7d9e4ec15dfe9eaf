/// <reference types="vitest/config" />
import { defineConfig } from "vite";
import { svelte } from "@sveltejs/vite-plugin-svelte";
import { svelteTesting } from "@testing-library/svelte/vite";
import { inlinePage } from "./inlinePage";

// Tauri serves dist/ through its own protocol with a strict CSP: the one script and the one
// stylesheet are written into index.html (inlinePage.ts), where Tauri's build hashes the script
// into the CSP and gives the style a nonce; nothing else inline runs, and nothing may be loaded
// from the network.
export default defineConfig({
  plugins: [svelte(), svelteTesting(), inlinePage()],
  clearScreen: false,
  server: { port: 5173, strictPort: true },
  build: {
    outDir: "dist",
    emptyOutDir: true,
    // WebKitGTK 2.4x and WebView2 both handle ES2022.
    target: "es2022",
    // Vite would inline small assets as data: URLs; the CSP allows data: only for images, so keep
    // every asset a file.
    assetsInlineLimit: 0,
    sourcemap: false,
    // One script, so it can be inlined into index.html (see inlinePage.ts).
    rolldownOptions: { output: { codeSplitting: false } },
    // With one script there is nothing to preload; leave out Vite's preload polyfill.
    modulePreload: { polyfill: false },
  },
  test: {
    environment: "jsdom",
    setupFiles: ["./tests/setup.ts"],
    include: ["tests/**/*.test.ts"],
    restoreMocks: true,
  },
});
