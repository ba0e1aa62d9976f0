// `/projects`: the user's projects (name, description, last change), creating one (from a
// template) and deleting one after confirming. Each links to its page, `/projects/<id>`
// (files, editor and agent jobs: a lazy chunk, see app.tsx).
import { useState } from "preact/hooks";
import { ConfirmDelete } from "../components/ConfirmDelete";
import { LoadStatus, useLoad } from "../components/LoadStatus";
import { projectRules, projects, templates, type Project, type Template } from "../api/projects";
import { Link, navigate } from "../router";
import { formatWhen } from "../time";
import { usePageTitle } from "../usePageTitle";
import { errorMessage } from "./CatalogPage";
import "./pages.css";

export const projectHref = (id: string) => `/projects/${encodeURIComponent(id)}`;

export function ProjectsPage() {
  usePageTitle("Projects");
  const [reload, setReload] = useState(0);
  const [notice, setNotice] = useState<string | null>(null);
  const [load, setLoad] = useLoad((signal) => projects.list(signal), [reload], errorMessage);

  return (
    <section class="page" aria-labelledby="projects-heading">
      <h1 id="projects-heading">Projects</h1>
      <p class="page__lead">
        Your files, kept by sandpit between sessions. Edit them here, and have agent jobs research, sketch, write code, test and
        teach on them.
      </p>
      <CreateProject onCreated={(project) => navigate(projectHref(project.id))} />
      <section class="panel" aria-labelledby="list-heading">
        <h2 id="list-heading">Your projects</h2>
        <p class="status-line" role="status">
          {notice ?? ""}
        </p>
        <LoadStatus load={load} loading="Loading projects…" onRetry={() => setReload((n) => n + 1)} />
        {load.state === "ready" &&
          (load.projects.length === 0 ? (
            <p>No projects yet: create one above.</p>
          ) : (
            <div class="table-wrap">
              <table class="table" aria-label="Your projects">
                <thead>
                  <tr>
                    <th scope="col">Name</th>
                    <th scope="col">Description</th>
                    <th scope="col">Files</th>
                    <th scope="col">Updated</th>
                    <th scope="col">
                      <span class="visually-hidden">Actions</span>
                    </th>
                  </tr>
                </thead>
                <tbody>
                  {load.projects.map((p) => (
                    <ProjectRow
                      key={p.id}
                      project={p}
                      onDeleted={() => {
                        setNotice(`Project “${p.name}” deleted.`);
                        setLoad((current) =>
                          current.state === "ready" ? { state: "ready", projects: current.projects.filter((q) => q.id !== p.id) } : current,
                        );
                      }}
                    />
                  ))}
                </tbody>
              </table>
            </div>
          ))}
      </section>
    </section>
  );
}

function CreateProject({ onCreated }: { onCreated: (project: Project) => void }) {
  const [name, setName] = useState("");
  const [description, setDescription] = useState("");
  const [template, setTemplate] = useState<Template>("python");
  const [pending, setPending] = useState(false);
  const [error, setError] = useState<string | null>(null);

  const submit = async (event: Event) => {
    event.preventDefault();
    if (name.trim() === "") {
      setError("Give the project a name.");
      return;
    }
    setPending(true);
    setError(null);
    try {
      onCreated(await projects.create({ name: name.trim(), description: description.trim(), template }));
    } catch (caught) {
      setError(errorMessage(caught));
      setPending(false);
    }
  };

  return (
    <section class="panel" aria-labelledby="create-project-heading">
      <h2 id="create-project-heading">New project</h2>
      <form class="form" onSubmit={submit}>
        <div class="project-form">
          <div class="field">
            <label for="project-name">Name</label>
            <input
              id="project-name"
              maxLength={projectRules.name.maxLength}
              autocomplete="off"
              placeholder="e.g. Snake game"
              value={name}
              onInput={(e) => setName(e.currentTarget.value)}
            />
          </div>
          <div class="field">
            <label for="project-template">Start from</label>
            <select id="project-template" value={template} onChange={(e) => setTemplate(e.currentTarget.value as Template)}>
              {templates.map((t) => (
                <option key={t.value} value={t.value}>
                  {t.label}
                </option>
              ))}
            </select>
          </div>
        </div>
        <div class="field">
          <label for="project-description">
            Description <span class="optional">(optional)</span>
          </label>
          <textarea
            id="project-description"
            rows={2}
            maxLength={projectRules.description.maxLength}
            value={description}
            onInput={(e) => setDescription(e.currentTarget.value)}
          />
        </div>
        {error !== null && (
          <p role="alert" class="alert">
            {error}
          </p>
        )}
        <div>
          <button type="submit" class="button button--accent" disabled={pending}>
            {pending ? "Creating…" : "Create project"}
          </button>
        </div>
      </form>
    </section>
  );
}

function ProjectRow({ project, onDeleted }: { project: Project; onDeleted: () => void }) {
  return (
    <tr>
      <th scope="row">
        <Link href={projectHref(project.id)}>{project.name}</Link>
      </th>
      <td class="project-description">{project.description || <span class="hint">—</span>}</td>
      <td>{project.files}</td>
      <td>
        <time dateTime={project.updated_at}>{formatWhen(project.updated_at)}</time>
      </td>
      <td>
        <ConfirmDelete
          name={project.name}
          question="Delete it with all its files?"
          onConfirm={async () => {
            await projects.remove(project.id);
            onDeleted();
          }}
        />
      </td>
    </tr>
  );
}
