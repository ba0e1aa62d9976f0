// The lab catalog (`GET /api/v1/labs`): what the catalog page shows. Lab workspace calls live
// with the workspace page.
import { get } from "../api";

export type Difficulty = "beginner" | "intermediate" | "advanced" | (string & {});

/** The caller's progress in one lab. */
export interface LabProgress {
  lab: string;
  title: string;
  steps_passed: string[];
  steps_total: number;
  completed: boolean;
  completed_at: string | null;
  attempts: number;
  last_attempt_at: string | null;
}

export interface LabSummary {
  slug: string;
  title: string;
  summary: string;
  difficulty: Difficulty;
  tags: string[];
  environment: string;
  steps: number;
  progress: LabProgress;
}

export const catalog = {
  list: (signal?: AbortSignal) => get<{ labs: LabSummary[] }>("/api/v1/labs", signal ? { signal } : {}),
};
