// `/labs`: every lab with the learner's progress, filtered by tag.
import { LoadStatus } from "../components/LoadStatus";
import { useEffect, useMemo, useState } from "preact/hooks";
import { ApiError } from "../api";
import { catalog, type LabSummary } from "../api/catalog";
import { Link } from "../router";
import { usePageTitle } from "../usePageTitle";
import "./pages.css";

type Load = { state: "loading" } | { state: "error"; message: string } | { state: "ready"; labs: LabSummary[] };

export function errorMessage(error: unknown, fallback = "Something went wrong. Please try again."): string {
  if (error instanceof ApiError) return error.message;
  return fallback;
}

/** The tag filter lives in the query string (`?tag=docker`) so a filtered view can be shared. */
function tagFromLocation(): string | null {
  return new URLSearchParams(location.search).get("tag");
}

function progressText(lab: LabSummary): string {
  if (lab.progress.completed) return "Completed ✓";
  const total = lab.progress.steps_total || lab.steps;
  return `${lab.progress.steps_passed.length} of ${total} steps`;
}

export function CatalogPage() {
  usePageTitle("Labs");
  const [load, setLoad] = useState<Load>({ state: "loading" });
  const [tag, setTagState] = useState<string | null>(tagFromLocation);
  const [attempt, setAttempt] = useState(0);

  useEffect(() => {
    const controller = new AbortController();
    setLoad({ state: "loading" });
    catalog.list(controller.signal).then(
      ({ labs }) => setLoad({ state: "ready", labs }),
      (error: unknown) => {
        if (!controller.signal.aborted) setLoad({ state: "error", message: errorMessage(error) });
      },
    );
    return () => controller.abort();
  }, [attempt]);

  const setTag = (next: string | null) => {
    setTagState(next);
    const url = new URL(location.href);
    if (next) url.searchParams.set("tag", next);
    else url.searchParams.delete("tag");
    history.replaceState(null, "", url.pathname + url.search);
  };

  const tags = useMemo(() => {
    if (load.state !== "ready") return [];
    const counts = new Map<string, number>();
    for (const lab of load.labs) for (const t of lab.tags) counts.set(t, (counts.get(t) ?? 0) + 1);
    return [...counts.entries()].sort((a, b) => b[1] - a[1] || a[0].localeCompare(b[0])).map(([t]) => t);
  }, [load]);

  const shown = load.state === "ready" ? load.labs.filter((lab) => tag === null || lab.tags.includes(tag)) : [];

  return (
    <section class="page" aria-labelledby="catalog-heading">
      <h1 id="catalog-heading">Labs</h1>
      <p class="page__lead">Hands-on exercises in a real sandbox, checked by the judge as you go.</p>

      <LoadStatus load={load} loading="Loading labs…" onRetry={() => setAttempt((n) => n + 1)} />
      {load.state === "ready" && (
        <>
          <div class="filters" role="group" aria-label="Filter by tag">
            <button type="button" class="chip" aria-pressed={tag === null} onClick={() => setTag(null)}>
              All
            </button>
            {tags.map((t) => (
              <button key={t} type="button" class="chip" aria-pressed={tag === t} onClick={() => setTag(t)}>
                {t}
              </button>
            ))}
          </div>
          <p class="status-line" aria-live="polite">
            {tag === null ? `${shown.length} labs` : `${shown.length} of ${load.labs.length} labs tagged “${tag}”`}
          </p>
          {shown.length === 0 ? (
            <p>No labs match this filter.</p>
          ) : (
            <ul class="lab-grid" aria-label="Labs">
              {shown.map((lab) => (
                <LabCard key={lab.slug} lab={lab} />
              ))}
            </ul>
          )}
        </>
      )}
    </section>
  );
}

function LabCard({ lab }: { lab: LabSummary }) {
  const headingId = `lab-${lab.slug}`;
  const passed = lab.progress.steps_passed.length;
  const started = passed > 0 || lab.progress.attempts > 0;
  const total = lab.progress.steps_total || lab.steps;
  return (
    <li class="lab-card" aria-labelledby={headingId} data-slug={lab.slug}>
      <h2 id={headingId} class="lab-card__title">
        {lab.title}
      </h2>
      <p class="lab-card__summary">{lab.summary}</p>
      <dl class="lab-card__facts">
        <div>
          <dt>Difficulty</dt>
          <dd>
            <span class={`badge badge--${lab.difficulty}`}>{lab.difficulty}</span>
          </dd>
        </div>
        <div>
          <dt>Steps</dt>
          <dd>{lab.steps}</dd>
        </div>
        <div>
          <dt>Progress</dt>
          <dd class={lab.progress.completed ? "progress progress--done" : "progress"} data-testid="progress">
            {progressText(lab)}
          </dd>
        </div>
      </dl>
      <progress
        class="lab-card__bar"
        max={total || 1}
        value={lab.progress.completed ? total : passed}
        aria-label={`Progress in ${lab.title}`}
      />
      <ul class="tags" aria-label="Tags">
        {lab.tags.map((t) => (
          <li key={t} class="tag">
            {t}
          </li>
        ))}
      </ul>
      <div class="lab-card__actions">
        <Link href={`/labs/${encodeURIComponent(lab.slug)}`} class="button button--accent">
          {lab.progress.completed ? "Review" : started ? "Continue" : "Start"}
          <span class="visually-hidden"> {lab.title}</span>
        </Link>
      </div>
    </li>
  );
}
