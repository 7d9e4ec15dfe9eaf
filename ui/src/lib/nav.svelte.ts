// Which screen shows. Not in the URL: Tauri has no address bar, and a screen's transient secrets
// (a credential shown once) must vanish when it is left, which unmounting guarantees.
export type Route = "request" | "access" | "approvals" | "history";

class Nav {
  route = $state<Route>("request");
  /** The Request screen opens in extension mode for this grant. */
  extend = $state<string | null>(null);
  /** A request to bring to the user's attention on the screen that shows it (deep link). */
  focus = $state<string | null>(null);

  go(route: Route, options: { extend?: string | null; focus?: string | null } = {}) {
    this.route = route;
    this.extend = options.extend ?? null;
    this.focus = options.focus ?? null;
  }
}

export const nav = new Nav();
