// The workspace's files as a tree of folders (native <details>, so keyboard and screen readers
// work without extra code) and file buttons.
import type { FileEntry } from "../api/labs";

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

interface Props {
  entries: FileEntry[];
  active: string | null;
  onOpen: (path: string) => void;
}

export function FileTree({ entries, active, onOpen }: Props) {
  const tree = buildTree(entries);
  if (tree.length === 0) return <p class="ws-muted">No files yet.</p>;
  return <ul class="ws-tree">{tree.map((n) => <TreeNode key={n.path} node={n} active={active} onOpen={onOpen} />)}</ul>;
}

function TreeNode({ node, active, onOpen }: { node: Node; active: string | null; onOpen: (path: string) => void }) {
  if (node.kind === "dir") {
    const hidden = node.name.startsWith(".") || node.name === "__pycache__" || node.name === "node_modules";
    return (
      <li>
        <details open={!hidden}>
          <summary class="ws-tree__dir">{node.name}/</summary>
          <ul class="ws-tree">{node.children.map((c) => <TreeNode key={c.path} node={c} active={active} onOpen={onOpen} />)}</ul>
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
    <li>
      <button
        type="button"
        class={`ws-tree__file${node.path === active ? " is-active" : ""}`}
        aria-current={node.path === active ? "true" : undefined}
        aria-label={`Open ${node.path}`}
        onClick={() => onOpen(node.path)}
      >
        {node.name}
      </button>
    </li>
  );
}
