// A deploy's stages as the stepper shows them, without the DOM: from the deploy job's state and
// its last progress message (each stage is one: validating → installing → starting → healthy),
// or from a version alone when its job's events are gone. Also which files make which runtime.
import type { AppRuntime, Version } from "../api/apps";

export const STAGES = ["validating", "installing", "starting", "healthy"] as const;
export type Stage = (typeof STAGES)[number];

export type StepState = "done" | "active" | "failed" | "cancelled" | "pending";

export interface Step {
  stage: Stage;
  state: StepState;
  /** Where the deploy is (or stopped): exactly one step, none while it waits in the queue. */
  current: boolean;
}

export interface DeployProgress {
  /** The job's state: `queued`, `running`, `completed`, `failed`, `cancelled`. */
  state: string;
  /** The last stage the job said it was in (its progress message). */
  stage: string | null;
  /** The stage a failure names (`DeployError.stage`), when known. */
  failedAt?: string | null;
}

const indexOf = (stage: string | null | undefined) => STAGES.indexOf(stage as Stage);

export function stepsOf(progress: DeployProgress): Step[] {
  const reached = indexOf(progress.stage);
  if (progress.state === "completed") {
    return STAGES.map((stage, i) => ({ stage, state: "done", current: i === STAGES.length - 1 }));
  }
  if (progress.state === "failed" || progress.state === "cancelled") {
    // A failure outside the four (`deploy`: its time limit) stopped the stage it had reached.
    const named = indexOf(progress.failedAt);
    const at = named !== -1 ? named : Math.max(0, reached);
    const end: StepState = progress.state === "failed" ? "failed" : "cancelled";
    return STAGES.map((stage, i) => ({ stage, state: i < at ? "done" : i === at ? end : "pending", current: i === at }));
  }
  return STAGES.map((stage, i) => ({
    stage,
    state: i < reached ? "done" : i === reached ? "active" : "pending",
    current: i === reached,
  }));
}

/** A version's deploy as progress, for a version whose job cannot be followed. */
export function progressOfVersion(version: Version): DeployProgress {
  switch (version.state) {
    case "live":
    case "superseded":
      return { state: "completed", stage: "healthy" };
    case "failed":
      return { state: "failed", stage: null, failedAt: version.error?.stage ?? null };
    case "cancelled":
      return { state: "cancelled", stage: null };
    default:
      return { state: "queued", stage: null };
  }
}

/** The stage a failed job's message starts with (`validating: main.py:1: invalid syntax`). */
export function stageOfJobError(message: string | null | undefined): Stage | null {
  const prefix = message?.split(":", 1)[0] ?? "";
  return indexOf(prefix) === -1 ? null : (prefix as Stage);
}

/** The runtime a set of files is most likely for: main.py, server.js, index.html, in that order. */
export function guessRuntime(paths: string[]): AppRuntime | null {
  const names = new Set(paths);
  if (names.has("main.py")) return "python";
  if (names.has("server.js")) return "node";
  if (names.has("index.html")) return "static";
  return null;
}

/** A suggestion for an app's name (a DNS label) from free text such as a lab's slug. */
export function appNameFrom(text: string): string {
  return text
    .toLowerCase()
    .replace(/[^a-z0-9]+/g, "-")
    .replace(/^-+|-+$/g, "")
    .slice(0, 40)
    .replace(/-+$/, "");
}
