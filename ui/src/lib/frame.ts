// The moment after the next frame has been drawn: a frame's callbacks run before it is drawn, and a
// task queued from them runs after.

/** Settles once the next frame has been drawn. */
export function afterNextFrame(): Promise<void> {
  return new Promise((resolve) => requestAnimationFrame(() => setTimeout(resolve, 0)));
}
