// A project at /projects/<id>: its files in the tree and editor (the same `Editor` as the lab
// workspace, over the projects file API: ETags, If-Match, a 412 offers Reload or Overwrite),
// and the agent jobs panel. Loaded lazily (app.tsx), so CodeMirror stays out of the first page.
import { useCallback, useEffect, useMemo, useState } from "preact/hooks";
import { ApiError } from "../api";
import type { FileApi } from "../api/files";
import { projectFiles, projects, type Project } from "../api/projects";
import { LoadStatus, type Load } from "../components/LoadStatus";
import { JobPanel } from "../projects/JobPanel";
import { Link } from "../router";
import { formatWhen } from "../time";
import { usePageTitle } from "../usePageTitle";
import { Editor } from "../workspace/Editor";
import { Banner } from "../workspace/Banner";
import "./workspace.css";
import "./project.css";

export function ProjectPage({ id }: { id: string }) {
  const [load, setLoad] = useState<Load<{ project: Project }>>({ state: "loading" });
  const [reload, setReload] = useState(0);
  const [banner, setBanner] = useState<string | null>(null);
  const [refreshKey, setRefreshKey] = useState(0);
  const [edits, setEdits] = useState(0);
  // The editor's writes, deletes and renames are counted, so a change set's diff is made again
  // against what the files are now.
  const files = useMemo((): FileApi => {
    const api = projectFiles(id);
    const counted =
      <A extends unknown[], R>(f: (...args: A) => Promise<R>) =>
      async (...args: A) => {
        const result = await f(...args);
        setEdits((n) => n + 1);
        return result;
      };
    return { ...api, write: counted(api.write), remove: counted(api.remove), move: counted(api.move) };
  }, [id]);
  usePageTitle(load.state === "ready" ? load.project.name : "Project");

  useEffect(() => {
    const controller = new AbortController();
    projects.get(id, controller.signal).then(
      (project) => setLoad({ state: "ready", project }),
      (error: unknown) => {
        if (controller.signal.aborted) return;
        const message =
          error instanceof ApiError && error.status === 404
            ? "There is no such project: it was deleted, or it is not yours."
            : error instanceof Error
              ? error.message
              : String(error);
        setLoad({ state: "error", message });
      },
    );
    return () => controller.abort();
  }, [id, reload]);

  const onError = useCallback((message: string) => setBanner(message), []);
  // An accepted (or applied) change set: the tree re-reads, open tabs without edits follow.
  const onFilesChanged = useCallback(() => setRefreshKey((k) => k + 1), []);

  if (load.state !== "ready") {
    return (
      <section class="ws-message">
        <h1>Project</h1>
        <LoadStatus load={load} loading="Loading the project…" onRetry={() => setReload((n) => n + 1)} />
        <p>
          <Link href="/projects">Back to your projects</Link>
        </p>
      </section>
    );
  }
  const { project } = load;

  return (
    <div class="project">
      <div class="project__top">
        <Link href="/projects" class="project__back">
          ← Projects
        </Link>
        <h1 class="ws-title">{project.name}</h1>
        {project.description ? <p class="ws-muted project__description">{project.description}</p> : null}
        <p class="ws-muted project__facts">
          Created <time dateTime={project.created_at}>{formatWhen(project.created_at)}</time>
        </p>
        <a class="ws-button project__archive" href={`/api/v1/projects/${encodeURIComponent(project.id)}/archive`} download>
          Download .tar.gz
        </a>
      </div>
      <Banner message={banner} onDismiss={() => setBanner(null)} />
      <div class="project__body">
        <div class="project__files">
          <Editor files={files} refreshKey={refreshKey} onError={onError} />
        </div>
        <JobPanel projectId={project.id} files={files} filesVersion={`${refreshKey}.${edits}`} onFilesChanged={onFilesChanged} />
      </div>
    </div>
  );
}
