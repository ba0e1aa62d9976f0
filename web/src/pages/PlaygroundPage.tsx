// `/playground`: run code statelessly (`POST /api/v1/runs`) in any installed runtime, with
// several files, stdin, args, limits and optional test cases, and see every stage's result.
import { useEffect, useRef, useState } from "preact/hooks";
import { runs, statusLabels, type RunRequest, type RunResult, type Runtime, type Stage, type TestResult } from "../api/runs";
import { DeployAsApp } from "../apps/DeployAsApp";
import { usePageTitle } from "../usePageTitle";
import { errorMessage } from "./CatalogPage";
import "./pages.css";

interface EditorFile {
  key: number;
  name: string;
  content: string;
}

interface CaseInput {
  key: number;
  stdin: string;
  expected: string;
}

/** A starting point per language family: the main file's name and a program that reads stdin. */
const templates: Record<string, { file: string; code: string }> = {
  python: { file: "main.py", code: 'name = input("")\nprint(f"Hello, {name}!")\n' },
  javascript: {
    file: "main.js",
    code: 'const input = require("fs").readFileSync(0, "utf8").trim();\nconsole.log(`Hello, ${input}!`);\n',
  },
  c: {
    file: "main.c",
    code: '#include <stdio.h>\n\nint main(void) {\n    char name[100] = "";\n    if (scanf("%99s", name) != 1) return 1;\n    printf("Hello, %s!\\n", name);\n    return 0;\n}\n',
  },
  cpp: {
    file: "main.cpp",
    code: '#include <iostream>\n#include <string>\n\nint main() {\n    std::string name;\n    std::cin >> name;\n    std::cout << "Hello, " << name << "!\\n";\n}\n',
  },
  bash: { file: "main.sh", code: 'read -r name\necho "Hello, $name!"\n' },
  ruby: { file: "main.rb", code: 'name = gets.to_s.strip\nputs "Hello, #{name}!"\n' },
  go: {
    file: "main.go",
    code: 'package main\n\nimport "fmt"\n\nfunc main() {\n\tvar name string\n\tfmt.Scan(&name)\n\tfmt.Printf("Hello, %s!\\n", name)\n}\n',
  },
  rust: {
    file: "main.rs",
    code: 'use std::io::Read;\n\nfn main() {\n    let mut name = String::new();\n    std::io::stdin().read_to_string(&mut name).unwrap();\n    println!("Hello, {}!", name.trim());\n}\n',
  },
  java: {
    file: "Main.java",
    code: 'import java.util.Scanner;\n\npublic class Main {\n    public static void main(String[] args) {\n        String name = new Scanner(System.in).next();\n        System.out.println("Hello, " + name + "!");\n    }\n}\n',
  },
};

function templateFor(runtime: Runtime | undefined) {
  if (!runtime) return { file: "main.txt", code: "" };
  for (const name of [runtime.name, ...runtime.aliases]) {
    const key = name.toLowerCase().replace(/[0-9.]+$/, "");
    const found = templates[key] ?? (key === "node" || key === "js" ? templates.javascript : undefined) ?? (key === "sh" ? templates.bash : undefined);
    if (found) return found;
  }
  return { file: "main", code: "" };
}

/** "GNU bash, version 5.2.15(1)-release (x86_64…)" → "5.2.15": the version command's first number. */
function shortVersion(version: string): string {
  return /\d+(\.\d+)+/.exec(version)?.[0] ?? version.slice(0, 24);
}

let nextKey = 1;
const key = () => nextKey++;

/** `--flag "two words"` → [`--flag`, `two words`]: whitespace separates, quotes group. */
export function splitArgs(text: string): string[] {
  const args: string[] = [];
  const re = /"([^"]*)"|'([^']*)'|(\S+)/g;
  for (const m of text.matchAll(re)) args.push(m[1] ?? m[2] ?? m[3] ?? "");
  return args;
}

function parseNumber(text: string): number | undefined {
  const trimmed = text.trim();
  if (trimmed === "") return undefined;
  const n = Number(trimmed);
  return Number.isFinite(n) && n > 0 ? n : undefined;
}

export function PlaygroundPage() {
  usePageTitle("Playground");
  const [runtimes, setRuntimes] = useState<Runtime[] | null>(null);
  const [loadError, setLoadError] = useState<string | null>(null);
  const [runtime, setRuntime] = useState("");
  const [files, setFiles] = useState<EditorFile[]>([{ key: key(), name: "main.py", content: "" }]);
  const [active, setActive] = useState(0);
  const [stdin, setStdin] = useState("");
  const [args, setArgs] = useState("");
  const [timeLimit, setTimeLimit] = useState("");
  const [memoryLimit, setMemoryLimit] = useState("");
  const [cases, setCases] = useState<CaseInput[]>([]);
  const [running, setRunning] = useState(false);
  const [error, setError] = useState<string | null>(null);
  const [result, setResult] = useState<RunResult | null>(null);
  const untouched = useRef(true);
  const resultRef = useRef<HTMLElement>(null);

  useEffect(() => {
    const controller = new AbortController();
    runs.runtimes(controller.signal).then(
      ({ runtimes: list }) => {
        const sorted = [...list].sort((a, b) => a.name.localeCompare(b.name));
        setRuntimes(sorted);
        const first = sorted.find((r) => r.name === "python" || r.aliases.includes("python")) ?? sorted.find((r) => r.name.startsWith("python")) ?? sorted[0];
        if (first) chooseRuntime(first.name, sorted);
      },
      (caught: unknown) => {
        if (!controller.signal.aborted) setLoadError(errorMessage(caught));
      },
    );
    return () => controller.abort();
  }, []);

  /** Switching language replaces the starter program, unless the learner has written something. */
  const chooseRuntime = (name: string, list = runtimes ?? []) => {
    setRuntime(name);
    if (!untouched.current) return;
    const template = templateFor(list.find((r) => r.name === name));
    setFiles([{ key: key(), name: template.file, content: template.code }]);
    setActive(0);
  };

  const updateFile = (index: number, change: Partial<EditorFile>) => {
    untouched.current = false;
    setFiles((current) => current.map((f, i) => (i === index ? { ...f, ...change } : f)));
  };
  const addFile = () => {
    untouched.current = false;
    const names = new Set(files.map((f) => f.name));
    let n = files.length;
    while (names.has(`file${n}.txt`)) n++;
    setFiles([...files, { key: key(), name: `file${n}.txt`, content: "" }]);
    setActive(files.length);
  };
  const removeFile = (index: number) => {
    if (files.length <= 1) return;
    untouched.current = false;
    setFiles(files.filter((_, i) => i !== index));
    setActive(Math.max(0, Math.min(active, files.length - 2)));
  };

  const onTabKey = (event: KeyboardEvent, index: number) => {
    let next = index;
    if (event.key === "ArrowRight") next = (index + 1) % files.length;
    else if (event.key === "ArrowLeft") next = (index - 1 + files.length) % files.length;
    else if (event.key === "Home") next = 0;
    else if (event.key === "End") next = files.length - 1;
    else return;
    event.preventDefault();
    setActive(next);
    document.getElementById(`file-tab-${next}`)?.focus();
  };

  const duplicateNames = new Set(files.map((f) => f.name.trim()).filter((n, i, all) => all.indexOf(n) !== i));
  const emptyName = files.some((f) => f.name.trim() === "");

  const run = async (event?: Event) => {
    event?.preventDefault();
    if (running || !runtime) return;
    if (emptyName || duplicateNames.size > 0) {
      setError(emptyName ? "Every file needs a name." : `Two files are named ${[...duplicateNames][0]}.`);
      return;
    }
    const seconds = parseNumber(timeLimit);
    const memory = parseNumber(memoryLimit);
    const body: RunRequest = {
      runtime,
      files: files.map((f) => ({ name: f.name.trim(), content: f.content })),
      stdin,
      args: splitArgs(args),
    };
    if (seconds !== undefined || memory !== undefined) {
      body.limits = {};
      // The time limit is CPU time; the wall clock gets a second more for start-up and I/O.
      if (seconds !== undefined) {
        body.limits.cpu_ms = Math.round(seconds * 1000);
        body.limits.wall_ms = Math.round(seconds * 1000) + 1000;
      }
      if (memory !== undefined) body.limits.memory_mb = Math.round(memory);
    }
    if (cases.length > 0) {
      body.tests = cases.map((c) => (c.expected === "" ? { stdin: c.stdin } : { stdin: c.stdin, expected_stdout: c.expected }));
    }
    setRunning(true);
    setError(null);
    try {
      const answer = await runs.create(body);
      setResult(answer);
      requestAnimationFrame(() => resultRef.current?.focus());
    } catch (caught) {
      setError(errorMessage(caught));
    } finally {
      setRunning(false);
    }
  };

  const current = files[active] ?? files[0];

  return (
    <section class="page" aria-labelledby="playground-heading">
      <h1 id="playground-heading">Playground</h1>
      {/* Outside the form below: the dialog has a form of its own, and forms do not nest. The
          playground keeps no session, so its files go with the deploy request. */}
      <div class="playground__top">
        <p class="page__lead">Run a program in a sandbox: pick a language, write code, give it input, and see what it does.</p>
        <DeployAsApp
          class="button"
          what="the playground's files"
          suggestedName="playground"
          paths={() => Promise.resolve(files.map((f) => f.name.trim()))}
          source={() => ({ files: Object.fromEntries(files.map((f) => [f.name.trim(), f.content])) })}
        />
      </div>

      {loadError !== null && (
        <p role="alert" class="alert">
          Could not load the languages: {loadError}
        </p>
      )}

      <form class="playground" onSubmit={run}>
        <div class="playground__bar">
          <div class="field field--inline">
            <label for="runtime">Language</label>
            <select id="runtime" value={runtime} onChange={(e) => chooseRuntime(e.currentTarget.value)} disabled={runtimes === null}>
              {runtimes === null && <option value="">Loading…</option>}
              {runtimes?.map((r) => (
                <option key={r.name} value={r.name}>
                  {r.name} {shortVersion(r.version)}
                </option>
              ))}
            </select>
          </div>
          <button type="submit" class="button button--accent" disabled={running || !runtime}>
            {running ? "Running…" : "Run"}
          </button>
          <span class="hint">Ctrl+Enter runs</span>
        </div>

        <div class="files">
          <div class="files__tabs">
            <div role="tablist" aria-label="Files" class="tabs">
              {files.map((f, i) => (
                <button
                  key={f.key}
                  id={`file-tab-${i}`}
                  type="button"
                  role="tab"
                  class="tab"
                  aria-selected={i === active}
                  aria-controls="file-panel"
                  tabIndex={i === active ? 0 : -1}
                  onClick={() => setActive(i)}
                  onKeyDown={(e) => onTabKey(e, i)}
                >
                  {f.name.trim() || "(unnamed)"}
                  {i === 0 && <span class="tab__main"> (main)</span>}
                </button>
              ))}
            </div>
            <button type="button" class="button button--small" onClick={addFile}>
              Add file
            </button>
          </div>
          {current && (
            <div id="file-panel" role="tabpanel" aria-labelledby={`file-tab-${active}`} class="files__panel">
              <div class="files__meta">
                <div class="field field--inline">
                  <label for="file-name">File name</label>
                  <input
                    id="file-name"
                    value={current.name}
                    spellcheck={false}
                    autocomplete="off"
                    aria-invalid={current.name.trim() === "" || duplicateNames.has(current.name.trim())}
                    onInput={(e) => updateFile(active, { name: e.currentTarget.value })}
                  />
                </div>
                <button type="button" class="button button--small" onClick={() => removeFile(active)} disabled={files.length <= 1}>
                  Remove file
                </button>
              </div>
              <label for="file-content" class="visually-hidden">
                Contents of {current.name || "the file"}
              </label>
              <textarea
                id="file-content"
                class="code"
                rows={14}
                spellcheck={false}
                autocomplete="off"
                value={current.content}
                onInput={(e) => updateFile(active, { content: e.currentTarget.value })}
                onKeyDown={(e) => {
                  if (e.key === "Enter" && (e.ctrlKey || e.metaKey)) run(e);
                }}
              />
            </div>
          )}
        </div>

        <div class="playground__io">
          <div class="field">
            <label for="stdin">Standard input</label>
            <textarea id="stdin" class="code" rows={4} spellcheck={false} value={stdin} onInput={(e) => setStdin(e.currentTarget.value)} />
          </div>
          <div class="stack">
            <div class="field">
              <label for="args">Arguments</label>
              <input id="args" spellcheck={false} autocomplete="off" value={args} aria-describedby="args-hint" onInput={(e) => setArgs(e.currentTarget.value)} />
              <p id="args-hint" class="hint">
                Separated by spaces; quote an argument with spaces in it.
              </p>
            </div>
            <div class="limits">
              <div class="field">
                <label for="time-limit">Time limit (s)</label>
                <input id="time-limit" type="number" min="0.1" step="0.1" inputMode="decimal" placeholder="3" value={timeLimit} onInput={(e) => setTimeLimit(e.currentTarget.value)} />
              </div>
              <div class="field">
                <label for="memory-limit">Memory limit (MB)</label>
                <input id="memory-limit" type="number" min="16" step="1" inputMode="numeric" placeholder="256" value={memoryLimit} onInput={(e) => setMemoryLimit(e.currentTarget.value)} />
              </div>
            </div>
          </div>
        </div>

        <fieldset class="cases">
          <legend>Test cases</legend>
          {cases.length === 0 && <p class="hint">Optional: run the program once per case and compare its output.</p>}
          {cases.map((c, i) => (
            <div key={c.key} class="case" role="group" aria-label={`Test case ${i + 1}`}>
              <div class="field">
                <label for={`case-${c.key}-stdin`}>Test {i + 1} input</label>
                <textarea
                  id={`case-${c.key}-stdin`}
                  class="code"
                  rows={2}
                  spellcheck={false}
                  value={c.stdin}
                  onInput={(e) => {
                    const value = e.currentTarget.value;
                    setCases((all) => all.map((x) => (x.key === c.key ? { ...x, stdin: value } : x)));
                  }}
                />
              </div>
              <div class="field">
                <label for={`case-${c.key}-expected`}>Test {i + 1} expected output</label>
                <textarea
                  id={`case-${c.key}-expected`}
                  class="code"
                  rows={2}
                  spellcheck={false}
                  value={c.expected}
                  onInput={(e) => {
                    const value = e.currentTarget.value;
                    setCases((all) => all.map((x) => (x.key === c.key ? { ...x, expected: value } : x)));
                  }}
                />
              </div>
              <button type="button" class="button button--small" onClick={() => setCases((all) => all.filter((x) => x.key !== c.key))}>
                Remove test {i + 1}
              </button>
            </div>
          ))}
          <button type="button" class="button button--small" onClick={() => setCases([...cases, { key: key(), stdin: "", expected: "" }])}>
            Add test case
          </button>
        </fieldset>
      </form>

      <div aria-live="polite" class="status-line">
        {running ? "Running…" : ""}
      </div>
      {error !== null && (
        <p role="alert" class="alert">
          {error}
        </p>
      )}
      {result && (
        <section class="results" aria-labelledby="results-heading" ref={resultRef} tabIndex={-1}>
          <h2 id="results-heading">Result</h2>
          {result.compile && <StageView title="Compile" stage={result.compile} />}
          {result.run && <StageView title="Run" stage={result.run} />}
          {result.tests?.map((t, i) => (
            <StageView key={i} title={`Test ${i + 1}`} stage={t} passed={t.passed ?? null} />
          ))}
        </section>
      )}
    </section>
  );
}

function formatMemory(kb: number): string {
  if (kb >= 1024) return `${(kb / 1024).toFixed(1)} MB`;
  return `${kb} KB`;
}

function StageView({ title, stage, passed }: { title: string; stage: Stage | TestResult; passed?: boolean | null }) {
  const id = `stage-${title.toLowerCase().replace(/\s+/g, "-")}`;
  const label = statusLabels[stage.status] ?? stage.status.replace(/_/g, " ");
  return (
    <section class="stage" aria-labelledby={id}>
      <header class="stage__head">
        <h3 id={id}>{title}</h3>
        <span class={`status-badge status-badge--${stage.status}`} data-testid="status">
          {label}
        </span>
        {passed === true && (
          <span class="status-badge status-badge--passed" data-testid="verdict">
            Passed
          </span>
        )}
        {passed === false && (
          <span class="status-badge status-badge--failed" data-testid="verdict">
            Failed
          </span>
        )}
      </header>
      <dl class="stage__facts">
        <div>
          <dt>Exit code</dt>
          <dd data-testid="exit-code">{stage.exit_code ?? (stage.signal !== null ? `signal ${stage.signal}` : "—")}</dd>
        </div>
        <div>
          <dt>Time</dt>
          <dd data-testid="time">
            {stage.wall_ms} ms wall, {stage.cpu_ms} ms CPU
          </dd>
        </div>
        <div>
          <dt>Memory</dt>
          <dd data-testid="memory">{formatMemory(stage.memory_kb)}</dd>
        </div>
      </dl>
      <Output label="stdout" text={stage.stdout} truncated={stage.stdout_truncated} />
      <Output label="stderr" text={stage.stderr} truncated={stage.stderr_truncated} />
    </section>
  );
}

function Output({ label, text, truncated }: { label: string; text: string; truncated: boolean }) {
  if (text === "" && !truncated) {
    return (
      <p class="output__empty">
        <span class="output__label">{label}</span> (empty)
      </p>
    );
  }
  return (
    <figure class="output">
      <figcaption class="output__label">
        {label}
        {truncated && " (truncated)"}
      </figcaption>
      <pre aria-label={label} tabIndex={0}>
        {text}
      </pre>
    </figure>
  );
}
