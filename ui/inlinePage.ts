import type { Plugin } from "vite";

/**
 * Writes the built script and stylesheet into index.html, so the webview draws the first screen
 * from one response instead of waiting on three more through Tauri's protocol (each a round trip
 * through the app's main thread). The CSP stays strict: Tauri's build hashes every inline script
 * into `script-src` and gives every `<style>` a fresh nonce per page load; nothing else inline
 * runs.
 *
 * It needs the build to be one script (`codeSplitting: false`): an inlined module resolves its
 * imports against the page, not against `assets/`. Text that would end its element early fails
 * the build instead of being rewritten (see `safeInScript`).
 */
export function inlinePage(): Plugin {
  return {
    name: "breakglass-inline-page",
    apply: "build",
    enforce: "post",
    generateBundle: {
      // After Vite's own generateBundle hooks, which still rewrite the script (the markers of
      // its dynamic-import preloading): the page must get the finished text.
      order: "post",
      handler(_options, bundle) {
        inlineInto(bundle as Bundle, (message) => this.error(`inline-page: ${message}`));
      },
    },
  };
}

/** The part of Vite's output bundle this plugin reads and changes. */
export type Bundle = Record<string, { type: "asset"; source: string | Uint8Array } | { type: "chunk"; code: string }>;

/** Inlines `bundle`'s script and stylesheet into its index.html, calling `fail` on any doubt. */
export function inlineInto(bundle: Bundle, fail: (message: string) => never): void {
  const page = bundle["index.html"];
  if (!page || page.type !== "asset" || typeof page.source !== "string") fail("the build has no index.html");
  let html = page.source as string;
  const inlined = new Set<string>();
  const file = (src: string): { name: string; text: string } => {
    const name = src.replace(/^\//, "");
    const item = bundle[name];
    if (!item) fail(`index.html refers to ${src}, which the build lacks`);
    inlined.add(name);
    return { name, text: item.type === "chunk" ? item.code : String(item.source) };
  };
  html = html.replace(/<script type="module" crossorigin src="([^"]+)"><\/script>/g, (_m, src: string) => {
    const { name, text } = file(src);
    if (text.includes("__VITE_PRELOAD__")) fail(`${name} is not finished (Vite's preload markers are still in it)`);
    if (!safeInScript(text)) fail(`${name} would end its <script> element early; it cannot be inlined`);
    return `<script type="module">${text}</script>`;
  });
  html = html.replace(/<link rel="stylesheet" crossorigin href="([^"]+)">/g, (_m, href: string) => {
    const { name, text } = file(href);
    if (/<\/style/i.test(text)) fail(`${name} contains "</style"; it cannot be inlined`);
    return `<style>${text}</style>`;
  });
  if (/<script[^>]+src=|<link rel="(stylesheet|modulepreload)"/.test(html)) {
    fail("index.html still loads a script or stylesheet from a file");
  }
  if (inlined.size === 0) fail("nothing was inlined");
  for (const name of inlined) delete bundle[name];
  page.source = html;
}

/**
 * Whether `text` can sit inside `<script>…</script>` unchanged: HTML ends the element at the
 * first `</script`, and after `<!--` a `<script` (before any `-->`) makes the parser skip the
 * next `</script>`. (Svelte's runtime has `<!---->` in it, which is harmless.)
 */
export function safeInScript(text: string): boolean {
  const lower = text.toLowerCase();
  if (lower.includes("</script")) return false;
  for (let at = lower.indexOf("<!--"); at >= 0; at = lower.indexOf("<!--", at + 4)) {
    const close = lower.indexOf("-->", at + 2);
    const opens = lower.indexOf("<script", at + 4);
    if (opens >= 0 && (close < 0 || opens < close)) return false;
  }
  return true;
}
