// A workspace's or project's files as a tree of folders (native <details>, so keyboard and
// screen readers work without extra code) and file buttons.
import type { FileEntry } from "../api/files";

interface Node {
  name: string;
  path: string;
  kind: FileEntry["kind"];
  children: Node[];
}

/** Builds a tree from the flat, depth-first list the API answers; folders first, then by name. */
export function buildTree(entries: FileEntry[]): Node[] {
  const root: Node = { name: "", path: "", kind: "dir", children: [] };
  const dirs = new Map<string, Node>([["", root]]);
  const sorted = [...entries].sort((a, b) => a.path.localeCompare(b.path));
  for (const entry of sorted) {
    const slash = entry.path.lastIndexOf("/");
    const parentPath = slash === -1 ? "" : entry.path.slice(0, slash);
    let parent = dirs.get(parentPath);
    if (!parent) {
      // A parent missing from a truncated list: make it.
      parent = { name: parentPath.split("/").pop() ?? parentPath, path: parentPath, kind: "dir", children: [] };
      dirs.set(parentPath, parent);
      root.children.push(parent);
    }
    const node: Node = { name: entry.path.slice(slash + 1), path: entry.path, kind: entry.kind, children: [] };
    parent.children.push(node);
    if (entry.kind === "dir") dirs.set(entry.path, node);
  }
  const order = (nodes: Node[]) => {
    nodes.sort((a, b) => (a.kind === "dir") !== (b.kind === "dir") ? (a.kind === "dir" ? -1 : 1) : a.name.localeCompare(b.name));
    for (const n of nodes) order(n.children);
  };
  order(root.children);
  return root.children;
}

interface Actions {
  onOpen: (path: string) => void;
  onRename: (path: string) => void;
  onDelete: (path: string) => void;
}

interface Props extends Actions {
  entries: FileEntry[];
  active: string | null;
}

export function FileTree({ entries, active, ...actions }: Props) {
  const tree = buildTree(entries);
  if (tree.length === 0) return <p class="ws-muted">No files yet.</p>;
  return <ul class="ws-tree">{tree.map((n) => <TreeNode key={n.path} node={n} active={active} actions={actions} />)}</ul>;
}

function TreeNode({ node, active, actions }: { node: Node; active: string | null; actions: Actions }) {
  const { onOpen } = actions;
  if (node.kind === "dir") {
    const hidden = node.name.startsWith(".") || node.name === "__pycache__" || node.name === "node_modules";
    return (
      <li>
        <details open={!hidden}>
          <summary class="ws-tree__dir">{node.name}/</summary>
          <ul class="ws-tree">{node.children.map((c) => <TreeNode key={c.path} node={c} active={active} actions={actions} />)}</ul>
        </details>
      </li>
    );
  }
  if (node.kind !== "file") {
    return (
      <li class="ws-tree__other" title={`${node.kind}: cannot be opened here`}>
        {node.name}
      </li>
    );
  }
  return (
    <li class="ws-tree__row">
      <button
        type="button"
        class={`ws-tree__file${node.path === active ? " is-active" : ""}`}
        aria-current={node.path === active ? "true" : undefined}
        aria-label={`Open ${node.path}`}
        onClick={() => onOpen(node.path)}
      >
        {node.name}
      </button>
      <span class="ws-tree__actions">
        <button type="button" class="ws-tree__action" aria-label={`Rename ${node.path}`} title="Rename" onClick={() => actions.onRename(node.path)}>
          ✎
        </button>
        <button type="button" class="ws-tree__action" aria-label={`Delete ${node.path}`} title="Delete" onClick={() => actions.onDelete(node.path)}>
          ✕
        </button>
      </span>
    </li>
  );
}
