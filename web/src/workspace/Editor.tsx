// The files of a session's workspace or of a project (a `FileApi`): the tree, tabs of open
// files and one CodeMirror 6 view whose state is swapped per tab (each tab keeps its own undo
// history). Saving writes with `If-Match` of the version the file was read at, so a change made
// meanwhile (terminal, another tab, an accepted change set) is never overwritten silently: a 412
// asks the learner to Reload or Overwrite. When the listing carries versions (projects do), an
// open tab without edits follows its file's newer version by itself.
import { defaultKeymap, history, historyKeymap, indentLess, indentMore } from "@codemirror/commands";
import { bracketMatching, defaultHighlightStyle, indentOnInput, syntaxHighlighting } from "@codemirror/language";
import { Compartment, EditorState } from "@codemirror/state";
import {
  drawSelection,
  EditorView,
  highlightActiveLine,
  highlightActiveLineGutter,
  keymap,
  lineNumbers,
} from "@codemirror/view";
import { useCallback, useEffect, useRef, useState } from "preact/hooks";
import { ApiError } from "../api";
import type { FileApi, FileEntry } from "../api/files";
import { FileTree } from "./FileTree";
import { languageFor } from "./languages";

interface Tab {
  state: EditorState;
  language: Compartment;
  etag: string | null;
  saved: string;
}

interface Props {
  /** The files edited; keep it the same object between renders (`useMemo`). */
  files: FileApi;
  /** Bumped by the page (terminal activity, a judge run, an accepted change) to re-read the tree. */
  refreshKey: number;
  onError: (message: string) => void;
}

const baseTheme = EditorView.theme({
  "&": { height: "100%", fontSize: "14px" },
  ".cm-scroller": { fontFamily: 'ui-monospace, "DejaVu Sans Mono", Menlo, Consolas, monospace' },
});

export function Editor({ files, refreshKey, onError }: Props) {
  const hostRef = useRef<HTMLDivElement>(null);
  const viewRef = useRef<EditorView | null>(null);
  const tabsRef = useRef(new Map<string, Tab>());
  const activeRef = useRef<string | null>(null);
  const [entries, setEntries] = useState<FileEntry[]>([]);
  const [open, setOpen] = useState<string[]>([]);
  const [active, setActive] = useState<string | null>(null);
  const [dirty, setDirty] = useState<ReadonlySet<string>>(new Set());
  const [conflict, setConflict] = useState<string | null>(null);
  const [status, setStatus] = useState("");
  const [newName, setNewName] = useState<string | null>(null);
  const saveRef = useRef<() => void>(() => undefined);
  const followRef = useRef<(entries: FileEntry[]) => void>(() => undefined);

  const markDirty = useCallback((path: string, isDirty: boolean) => {
    setDirty((prev) => {
      if (prev.has(path) === isDirty) return prev;
      const next = new Set(prev);
      if (isDirty) next.add(path);
      else next.delete(path);
      return next;
    });
  }, []);

  // Leaving the page (reload, closing the tab, another site) with unsaved edits asks first;
  // the browser shows its own wording.
  useEffect(() => {
    if (dirty.size === 0) return;
    const warn = (event: BeforeUnloadEvent) => {
      event.preventDefault();
      event.returnValue = "";
    };
    window.addEventListener("beforeunload", warn);
    return () => window.removeEventListener("beforeunload", warn);
  }, [dirty]);

  const refreshTree = useCallback(() => {
    files.list().then(
      (list) => {
        setEntries(list);
        followRef.current(list);
      },
      (e: unknown) => onError(messageOf(e)),
    );
  }, [files, onError]);

  useEffect(refreshTree, [refreshTree, refreshKey]);

  // One view for the component's life; tabs swap its state.
  useEffect(() => {
    const view = new EditorView({ parent: hostRef.current!, state: EditorState.create({ doc: "" }) });
    view.contentDOM.setAttribute("aria-label", "No file open");
    viewRef.current = view;
    return () => {
      view.destroy();
      viewRef.current = null;
    };
  }, []);

  const makeState = (path: string, doc: string, language: Compartment) =>
    EditorState.create({
      doc,
      extensions: [
        lineNumbers(),
        highlightActiveLineGutter(),
        history(),
        drawSelection(),
        indentOnInput(),
        bracketMatching(),
        highlightActiveLine(),
        syntaxHighlighting(defaultHighlightStyle, { fallback: true }),
        // Tab is NOT bound (indentWithTab off): Tab moves focus on; Mod-] / Mod-[ indent.
        keymap.of([
          { key: "Mod-s", preventDefault: true, run: () => (saveRef.current(), true) },
          { key: "Mod-]", run: indentMore },
          { key: "Mod-[", run: indentLess },
          ...historyKeymap,
          ...defaultKeymap,
        ]),
        language.of([]),
        baseTheme,
        EditorView.contentAttributes.of({ "aria-label": `Editor: ${path}` }),
        EditorView.updateListener.of((update) => {
          if (!update.docChanged) return;
          const tab = tabsRef.current.get(path);
          if (tab) markDirty(path, update.state.doc.toString() !== tab.saved);
        }),
      ],
    });

  const show = (path: string | null) => {
    const view = viewRef.current;
    if (!view) return;
    const current = activeRef.current;
    if (current && tabsRef.current.has(current)) tabsRef.current.get(current)!.state = view.state;
    activeRef.current = path;
    setActive(path);
    const tab = path ? tabsRef.current.get(path) : undefined;
    view.setState(tab ? tab.state : EditorState.create({ doc: "" }));
    if (!tab) view.contentDOM.setAttribute("aria-label", "No file open");
  };

  const load = async (path: string) => {
    const { text, etag } = await files.read(path);
    const language = new Compartment();
    tabsRef.current.set(path, { state: makeState(path, text, language), language, etag, saved: text });
    markDirty(path, false);
    languageFor(path).then(
      (lang) => {
        const tab = tabsRef.current.get(path);
        if (!lang || !tab || tab.language !== language) return;
        const effects = language.reconfigure(lang);
        if (activeRef.current === path && viewRef.current) viewRef.current.dispatch({ effects });
        else tab.state = tab.state.update({ effects }).state;
      },
      () => undefined,
    );
  };

  const openFile = async (path: string) => {
    try {
      if (!tabsRef.current.has(path)) {
        await load(path);
        setOpen((tabs) => (tabs.includes(path) ? tabs : [...tabs, path]));
      }
      show(path);
      viewRef.current?.focus();
    } catch (e) {
      onError(messageOf(e));
    }
  };

  const closeTab = (path: string) => {
    if (dirty.has(path) && !window.confirm(`${path} has unsaved changes. Close it anyway?`)) return;
    dropTab(path);
  };

  /** Forgets a tab without asking (its file is gone or has a new name). */
  const dropTab = (path: string) => {
    const remaining = open.filter((p) => p !== path);
    if (activeRef.current === path) show(remaining.at(-1) ?? null);
    tabsRef.current.delete(path);
    markDirty(path, false);
    setOpen(remaining);
  };

  const renameFile = async (path: string) => {
    if (dirty.has(path)) {
      onError(`Save or close ${path} before renaming it.`);
      return;
    }
    const to = window.prompt(`Rename ${path} to:`, path)?.trim().replace(/^\/+/, "");
    if (!to || to === path) return;
    try {
      await files.move(path, to);
      const wasOpen = open.includes(path);
      dropTab(path);
      setStatus(`Renamed ${path} to ${to}`);
      refreshTree();
      if (wasOpen) await openFile(to);
    } catch (e) {
      onError(messageOf(e));
    }
  };

  const deleteFile = async (path: string) => {
    if (!window.confirm(`Delete ${path}? This cannot be undone.`)) return;
    try {
      await files.remove(path);
      dropTab(path);
      setStatus(`Deleted ${path}`);
      refreshTree();
    } catch (e) {
      onError(messageOf(e));
    }
  };

  const save = async (overwrite = false) => {
    const path = activeRef.current;
    const view = viewRef.current;
    if (!path || !view) return;
    const tab = tabsRef.current.get(path)!;
    const text = view.state.doc.toString();
    setStatus(`Saving ${path}…`);
    try {
      const result = await files.write(path, text, overwrite ? undefined : tab.etag);
      tab.etag = result.etag;
      tab.saved = text;
      markDirty(path, view.state.doc.toString() !== text);
      setConflict(null);
      setStatus(`Saved ${path}`);
      refreshTree();
    } catch (e) {
      setStatus("");
      if (e instanceof ApiError && e.status === 412) setConflict(path);
      else onError(messageOf(e));
    }
  };
  saveRef.current = () => void save();

  /** Reads `path` again into its tab (its edits and undo history go). */
  const reloadTab = async (path: string) => {
    await load(path);
    if (activeRef.current === path) {
      activeRef.current = null;
      show(path);
    }
  };

  const reload = async () => {
    const path = conflict;
    if (!path) return;
    setConflict(null);
    try {
      await reloadTab(path);
      setStatus(`Reloaded ${path}`);
    } catch (e) {
      onError(messageOf(e));
    }
  };

  // A listing with versions: open tabs without edits whose file has a newer version reload.
  followRef.current = (list) => {
    for (const [path, tab] of tabsRef.current) {
      const etag = list.find((e) => e.path === path)?.etag;
      if (!etag || !tab.etag || etag === tab.etag) continue;
      const doc = activeRef.current === path && viewRef.current ? viewRef.current.state.doc : tab.state.doc;
      if (doc.toString() !== tab.saved) continue;
      reloadTab(path).then(
        () => setStatus(`Reloaded ${path}: it changed`),
        (e: unknown) => onError(messageOf(e)),
      );
    }
  };

  const createFile = async (event: Event) => {
    event.preventDefault();
    const path = (newName ?? "").trim().replace(/^\/+/, "");
    if (!path) return;
    try {
      await files.write(path, "", null);
      setNewName(null);
      refreshTree();
      await openFile(path);
    } catch (e) {
      if (e instanceof ApiError && e.status === 412) onError(`${path} already exists.`);
      else onError(messageOf(e));
    }
  };

  return (
    <div class="ws-files">
      <section class="ws-tree-panel" aria-label="Files">
        <div class="ws-panel-bar">
          <h2 class="ws-panel-title">Files</h2>
          <button type="button" class="ws-button" onClick={refreshTree}>
            Refresh
          </button>
          <button type="button" class="ws-button" onClick={() => setNewName(newName === null ? "" : null)} aria-expanded={newName !== null}>
            New file
          </button>
        </div>
        {newName !== null ? (
          <form class="ws-newfile" onSubmit={createFile}>
            <label>
              New file path
              <input
                type="text"
                value={newName}
                onInput={(e) => setNewName((e.target as HTMLInputElement).value)}
                placeholder="folder/name.py"
                autoFocus
                required
              />
            </label>
            <button type="submit" class="ws-button ws-button--primary">
              Create
            </button>
          </form>
        ) : null}
        <FileTree
          entries={entries}
          active={active}
          onOpen={(p) => void openFile(p)}
          onRename={(p) => void renameFile(p)}
          onDelete={(p) => void deleteFile(p)}
        />
      </section>
      <section class="ws-editor" aria-label="Editor">
        <div class="ws-tabs" role="tablist" aria-label="Open files">
          {open.map((path) => (
            <span key={path} class={`ws-tab${path === active ? " is-active" : ""}`}>
              <button
                type="button"
                role="tab"
                aria-selected={path === active}
                class="ws-tab__name"
                aria-label={dirty.has(path) ? `${path} (unsaved)` : path}
                onClick={() => show(path)}
              >
                {path.split("/").pop()}
                {dirty.has(path) ? <span class="ws-tab__dirty" aria-hidden="true"> ●</span> : null}
              </button>
              <button type="button" class="ws-tab__close" aria-label={`Close ${path}`} onClick={() => closeTab(path)}>
                ×
              </button>
            </span>
          ))}
          {active ? (
            <button type="button" class="ws-button ws-tabs__save" onClick={() => void save()}>
              Save
            </button>
          ) : null}
          <span class="ws-muted ws-tabs__status" role="status">
            {status}
          </span>
        </div>
        {conflict ? (
          <div class="ws-alert" role="alert">
            <span>This file changed on disk since you opened it ({conflict}).</span>
            <button type="button" class="ws-button" onClick={() => void reload()}>
              Reload
            </button>
            <button type="button" class="ws-button" onClick={() => void save(true)}>
              Overwrite
            </button>
          </div>
        ) : null}
        <div class="ws-editor__host" ref={hostRef} hidden={!active} />
        {!active ? <p class="ws-muted ws-editor__empty">Open a file from the list to edit it. Ctrl+S (⌘S) saves.</p> : null}
      </section>
    </div>
  );
}

function messageOf(e: unknown): string {
  return e instanceof Error ? e.message : String(e);
}
