/// <reference types="vitest/config" />
import { defineConfig } from "vite";
import { svelte } from "@sveltejs/vite-plugin-svelte";
import { svelteTesting } from "@testing-library/svelte/vite";

// Tauri serves dist/ through its own protocol with a strict CSP (no inline scripts or styles),
// so component CSS must end up in an external .css file (vite-plugin-svelte's default for builds)
// and nothing may be loaded from the network.
export default defineConfig({
  plugins: [svelte(), svelteTesting()],
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
  },
  test: {
    environment: "jsdom",
    setupFiles: ["./tests/setup.ts"],
    include: ["tests/**/*.test.ts"],
    restoreMocks: true,
  },
});
