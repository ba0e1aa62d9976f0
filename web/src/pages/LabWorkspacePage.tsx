// The lab workspace at /labs/<slug>: steps, files and editor, terminal, Check, Hint/Explain and
// the session's timer. Loaded lazily (app.tsx) so the rest of the app stays small.
import { useCallback, useEffect, useMemo, useRef, useState } from "preact/hooks";
import { ApiError } from "../api";
import { labs, sessionFiles, type Attempt, type Lab, type SessionInfo } from "../api/labs";
import { DeployAsApp } from "../apps/DeployAsApp";
import { appNameFrom } from "../apps/deploySteps";
import { navigate } from "../router";
import { usePageTitle } from "../usePageTitle";
import { CheckPanel } from "../workspace/CheckPanel";
import { Editor } from "../workspace/Editor";
import { HintPanel } from "../workspace/HintPanel";
import { SessionTimer } from "../workspace/SessionTimer";
import { Splitter } from "../workspace/Splitter";
import { StepsPanel } from "../workspace/StepsPanel";
import { Terminal, type TerminalHandle } from "../workspace/Terminal";
import { Banner } from "../workspace/Banner";
import "./workspace.css";

type Phase =
  | { kind: "starting" }
  // `code` is the server's (`docker_unavailable`, …); `retryAfter` its Retry-After in seconds.
  | { kind: "error"; message: string; code: string; retryAfter: number | undefined }
  | { kind: "ended" }
  | { kind: "ready" };

const LAYOUT_KEY = "sandpit.workspace.layout";

function savedLayout(): { steps: number; terminal: number } {
  try {
    const v = JSON.parse(localStorage.getItem(LAYOUT_KEY) ?? "null") as { steps?: unknown; terminal?: unknown } | null;
    if (v && typeof v.steps === "number" && typeof v.terminal === "number") return { steps: v.steps, terminal: v.terminal };
  } catch {
    // A broken value: the defaults.
  }
  return { steps: 380, terminal: 260 };
}

export function LabWorkspacePage({ slug }: { slug: string }) {
  const [phase, setPhase] = useState<Phase>({ kind: "starting" });
  const [lab, setLab] = useState<Lab | null>(null);
  const [session, setSession] = useState<SessionInfo | null>(null);
  const [current, setCurrent] = useState(0);
  const [banner, setBanner] = useState<string | null>(null);
  const [refreshKey, setRefreshKey] = useState(0);
  const [layout, setLayout] = useState(savedLayout);
  const terminalRef = useRef<TerminalHandle | null>(null);
  const refreshTimer = useRef<number | undefined>(undefined);
  usePageTitle(lab?.title ?? "Lab");
  const sessionId = session?.id;
  const files = useMemo(() => (sessionId ? sessionFiles(sessionId) : null), [sessionId]);

  const start = useCallback(() => {
    setPhase({ kind: "starting" });
    // Settled apart, so a lab that cannot start still shows its title.
    void Promise.allSettled([labs.start(slug), labs.get(slug)]).then(([started, lab]) => {
      if (lab.status === "fulfilled") setLab(lab.value);
      if (started.status === "fulfilled" && lab.status === "fulfilled") {
        setSession(started.value.session);
        const firstOpen = lab.value.steps.findIndex((s) => !s.passed);
        setCurrent(firstOpen === -1 ? Math.max(0, lab.value.steps.length - 1) : firstOpen);
        setPhase(started.value.session.status === "ended" ? { kind: "ended" } : { kind: "ready" });
        return;
      }
      const e: unknown = started.status === "rejected" ? started.reason : lab.status === "rejected" ? lab.reason : null;
      setPhase({
        kind: "error",
        message: e instanceof Error ? e.message : String(e),
        code: e instanceof ApiError ? e.code : "error",
        retryAfter: e instanceof ApiError ? e.retryAfter : undefined,
      });
    });
  }, [slug]);

  useEffect(start, [start]);

  useEffect(() => {
    localStorage.setItem(LAYOUT_KEY, JSON.stringify(layout));
  }, [layout]);

  const onError = useCallback((message: string) => setBanner(message), []);
  const onSessionGone = useCallback(() => setPhase({ kind: "ended" }), []);

  // Commands typed in the terminal may change files: re-read the tree shortly after.
  const onActivity = useCallback(() => {
    clearTimeout(refreshTimer.current);
    refreshTimer.current = window.setTimeout(() => setRefreshKey((k) => k + 1), 1500);
  }, []);
  useEffect(() => () => clearTimeout(refreshTimer.current), []);

  const onAttempt = (result: Attempt) => {
    setRefreshKey((k) => k + 1);
    if (!lab || !result.passed) return;
    const steps = lab.steps.map((s) => (s.id === result.step ? { ...s, passed: true } : s));
    setLab({ ...lab, steps });
    const index = steps.findIndex((s) => s.id === result.step);
    const next = steps.findIndex((s, i) => i > index && !s.passed);
    const anyOpen = steps.findIndex((s) => !s.passed);
    if (next !== -1) setCurrent(next);
    else if (anyOpen !== -1) setCurrent(anyOpen);
  };

  if (phase.kind === "starting") {
    return (
      <section class="ws-message" aria-busy="true">
        <h1>{lab?.title ?? "Lab"}</h1>
        <p role="status">Starting your sandbox…</p>
      </section>
    );
  }
  if (phase.kind === "error" && phase.code === "docker_unavailable") {
    // The server's message says why (not set up here, or still being checked at start-up);
    // retrying helps only in the second case, which the server marks with Retry-After.
    return (
      <section class="ws-message" aria-labelledby="ws-docker-title">
        <h1 id="ws-docker-title">{lab?.title ?? "Lab"}</h1>
        <h2>This lab needs the docker environment</h2>
        <p role="alert" class="ws-alert">
          {phase.message}
        </p>
        {phase.retryAfter !== undefined ? (
          <>
            <p>The server is getting it ready: try again in {phase.retryAfter} s.</p>
            <button type="button" class="ws-button ws-button--primary" onClick={start}>
              Try again
            </button>{" "}
          </>
        ) : (
          <p class="ws-muted">Its sessions have a container engine of their own, which this server cannot run at the moment. Labs of other tracks work without it.</p>
        )}
        <a href="/labs">Back to labs</a>
      </section>
    );
  }
  if (phase.kind === "error") {
    return (
      <section class="ws-message">
        <h1>Could not open this lab</h1>
        <p role="alert" class="ws-alert">
          {phase.message}
        </p>
        <button type="button" class="ws-button ws-button--primary" onClick={start}>
          Try again
        </button>{" "}
        <a href="/labs">Back to labs</a>
      </section>
    );
  }
  if (phase.kind === "ended" || !lab || !session || !files) {
    return (
      <section class="ws-message">
        <h1>{lab?.title ?? "Lab"}</h1>
        <p role="alert">This session has ended: its time ran out or it was ended.</p>
        <button type="button" class="ws-button ws-button--primary" onClick={start}>
          Start again
        </button>{" "}
        <a href="/labs">Back to labs</a>
      </section>
    );
  }

  const step = lab.steps[current];
  const complete = lab.steps.length > 0 && lab.steps.every((s) => s.passed);

  return (
    <div
      class="workspace"
      style={{ "--ws-steps": `${layout.steps}px`, "--ws-terminal": `${layout.terminal}px` } as Record<string, string>}
    >
      <div class="ws-top">
        <h1 class="ws-title">{lab.title}</h1>
        {complete ? (
          <p class="ws-complete" role="status">
            ✓ Lab complete
          </p>
        ) : (
          <p class="ws-muted">
            {lab.steps.filter((s) => s.passed).length} of {lab.steps.length} steps passed
          </p>
        )}
        <DeployAsApp
          class="ws-button"
          what="this session's saved files"
          suggestedName={appNameFrom(lab.slug)}
          paths={async () => (await files.list()).map((f) => f.path)}
          source={() => ({ session_id: session.id })}
        />
        <SessionTimer
          session={session}
          onChange={setSession}
          onExpired={onSessionGone}
          onEnded={() => navigate("/labs")}
          onError={onError}
        />
      </div>
      <Banner message={banner} onDismiss={() => setBanner(null)} />
      <div class="ws-body">
        <div class="ws-left">
          <div class="ws-left__steps">
            <StepsPanel steps={lab.steps} current={current} onSelect={setCurrent} onRun={(cmd) => terminalRef.current?.type(cmd)} />
          </div>
          <div class="ws-left__actions">
          <CheckPanel
            key={session.id}
            sessionId={session.id}
            stepId={step?.id}
            titleOf={(id) => lab.steps.find((s) => s.id === id)?.title}
            onAttempt={onAttempt}
            onSessionEnded={onSessionGone}
          />
          <HintPanel key={`hint-${step?.id}`} sessionId={session.id} stepId={step?.id} />
          </div>
        </div>
        <Splitter
          orientation="vertical"
          label="Resize the steps panel"
          value={layout.steps}
          min={220}
          max={720}
          onChange={(steps) => setLayout((l) => ({ ...l, steps }))}
        />
        <div class="ws-main">
          <Editor files={files} refreshKey={refreshKey} onError={onError} />
          <Splitter
            orientation="horizontal"
            label="Resize the terminal"
            value={layout.terminal}
            min={120}
            max={640}
            direction={-1}
            onChange={(terminal) => setLayout((l) => ({ ...l, terminal }))}
          />
          <Terminal sessionId={session.id} handleRef={terminalRef} onActivity={onActivity} onSessionGone={onSessionGone} />
        </div>
      </div>
    </div>
  );
}
