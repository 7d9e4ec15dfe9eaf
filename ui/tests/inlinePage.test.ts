import { describe, expect, it } from "vitest";
import { inlineInto, safeInScript, type Bundle } from "../inlinePage";

const PAGE = `<!doctype html><html><head>
<script type="module" crossorigin src="/assets/index-a1.js"></script>
<link rel="stylesheet" crossorigin href="/assets/index-b2.css">
</head><body><div id="app"></div></body></html>`;

/** Runs the plugin's work on `bundle`, its failures thrown. */
function build(bundle: Bundle): Bundle {
  inlineInto(bundle, (message) => {
    throw new Error(message);
  });
  return bundle;
}

function bundleOf(js: string, css = "main{color:red}"): Bundle {
  return {
    "index.html": { type: "asset", source: PAGE },
    "assets/index-a1.js": { type: "chunk", code: js },
    "assets/index-b2.css": { type: "asset", source: css },
  };
}

describe("inlinePage", () => {
  it("writes the script and the stylesheet into index.html and drops their files", () => {
    const out = build(bundleOf("console.log(`<!---->`)"));
    expect(Object.keys(out)).toEqual(["index.html"]);
    const html = (out["index.html"] as { source: string }).source;
    expect(html).toContain('<script type="module">console.log(`<!---->`)</script>');
    expect(html).toContain("<style>main{color:red}</style>");
    expect(html).not.toMatch(/src=|<link/);
  });

  it("fails the build when the script would end its element early", () => {
    expect(() => build(bundleOf('const s = "</script>";'))).toThrow(/would end its <script>/);
    expect(() => build(bundleOf("/* <!-- <script> */"))).toThrow(/would end its <script>/);
  });

  it("fails the build when the script still has Vite's preload markers in it", () => {
    expect(() => build(bundleOf("__vitePreload(() => x, __VITE_PRELOAD__)"))).toThrow(/not finished/);
  });

  it("fails the build when the stylesheet would end its element early", () => {
    expect(() => build(bundleOf("1", "a::after{content:'</style>'}"))).toThrow(/<\/style/);
  });

  it("fails the build when the page refers to a file the build lacks", () => {
    const bundle = bundleOf("1");
    delete bundle["assets/index-b2.css"];
    expect(() => build(bundle)).toThrow(/lacks/);
  });

  it("fails the build when the page still loads something from a file", () => {
    const bundle = bundleOf("1");
    (bundle["index.html"] as { source: string }).source = PAGE.replace("</head>", '<link rel="modulepreload" href="/x.js"></head>');
    expect(() => build(bundle)).toThrow(/still loads/);
  });
});

describe("safeInScript", () => {
  it.each([
    ["plain code", "let a = 1 < 2;", true],
    ["Svelte's empty comment marker", "t.replaceAll(`<!>`, `<!---->`)", true],
    ["a closed comment before a script tag", "`<!-- x -->` + `<script`", true],
    ["an end tag", "'</script>'", false],
    ["an end tag in capitals", "'</SCRIPT '", false],
    ["a script tag inside an open comment", "`<!-- <script>`", false],
    ["a script tag after an unclosed comment", "`<!--` + x + `<script`", false],
  ])("%s", (_what, text, safe) => {
    expect(safeInScript(text)).toBe(safe);
  });
});
