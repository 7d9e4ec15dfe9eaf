// Event subscriptions that fit Svelte's effect teardown: Tauri's listen() resolves to its
// unlisten function later, so a component gone before then must still unlisten.
import type { EventCallback, UnlistenFn } from "@tauri-apps/api/event";

type Listenable<T> = { listen: (cb: EventCallback<T>) => Promise<UnlistenFn> };

/** Starts listening now; the returned function stops it, whenever it is called. */
export function subscribe<T>(event: Listenable<T>, handler: (payload: T) => void): () => void {
  let stop: UnlistenFn | null = null;
  let done = false;
  event
    .listen((e) => handler(e.payload))
    .then((unlisten) => {
      if (done) unlisten();
      else stop = unlisten;
    })
    .catch((e: unknown) => console.error("could not listen for an event", e));
  return () => {
    done = true;
    try {
      stop?.();
    } catch (e) {
      // Runs inside a component's teardown, which must not be interrupted.
      console.error("could not stop listening for an event", e);
    }
  };
}

/**
 * Like subscribe, but resolves only once the listener is registered, for a caller that must not
 * miss the first events of something it is about to start.
 */
export async function subscribeReady<T>(event: Listenable<T>, handler: (payload: T) => void): Promise<() => void> {
  const unlisten = await event.listen((e) => handler(e.payload));
  return unlisten;
}
