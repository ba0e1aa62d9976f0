// What a page shows while its data loads or after loading failed: one component, so every page
// says "Loading…" and offers "Try again" the same way (and assistive tech hears it the same way).

/** The states of a page's initial load; `ready` carries the page's own data. */
export type Load<T> = { state: "loading" } | { state: "error"; message: string } | ({ state: "ready" } & T);

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
