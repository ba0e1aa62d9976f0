// What a page shows while its data loads or after loading failed: one component, so every page
// says "Loading…" and offers "Try again" the same way (and assistive tech hears it the same way).

import { useEffect, useState } from "preact/hooks";

/** The states of a page's initial load; `ready` carries the page's own data. */
export type Load<T> = { state: "loading" } | { state: "error"; message: string } | ({ state: "ready" } & T);

/**
 * Loads a page's data when `deps` change (abandoning a load still under way), as a `Load`:
 * `fetch` resolves to the ready state's data, `describe` words a failure. The setter is
 * returned for pages that edit what they loaded in place.
 */
export function useLoad<T extends object>(
  fetch: (signal: AbortSignal) => Promise<T>,
  deps: unknown[],
  describe: (error: unknown) => string,
) {
  const [load, setLoad] = useState<Load<T>>({ state: "loading" });
  useEffect(() => {
    const controller = new AbortController();
    fetch(controller.signal).then(
      (data) => setLoad({ state: "ready", ...data }),
      (error: unknown) => {
        if (!controller.signal.aborted) setLoad({ state: "error", message: describe(error) });
      },
    );
    return () => controller.abort();
    // `fetch` and `describe` are read as of the change of `deps`, as a page means them.
  }, deps);
  return [load, setLoad] as const;
}

export function LoadStatus({ load, loading, onRetry }: { load: Load<object>; loading: string; onRetry: () => void }) {
  if (load.state === "loading") {
    return (
      <p class="status" aria-busy="true">
        {loading}
      </p>
    );
  }
  if (load.state === "error") {
    return (
      <div class="stack">
        <p role="alert" class="alert">
          {load.message}
        </p>
        <button type="button" class="button" onClick={onRetry}>
          Try again
        </button>
      </div>
    );
  }
  return null;
}
