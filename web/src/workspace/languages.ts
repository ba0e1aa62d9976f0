// The editor's language by file name, each loaded only when a file of that kind is opened.
import { StreamLanguage, type StreamParser } from "@codemirror/language";
import type { Extension } from "@codemirror/state";

export async function languageFor(path: string): Promise<Extension | null> {
  const name = path.split("/").pop()?.toLowerCase() ?? "";
  const ext = name.includes(".") ? name.slice(name.lastIndexOf(".") + 1) : "";
  const legacy = async (parser: Promise<StreamParser<unknown>>) => StreamLanguage.define(await parser);
  if (name === "dockerfile" || name.endsWith(".dockerfile") || name.startsWith("dockerfile.")) {
    return legacy(import("@codemirror/legacy-modes/mode/dockerfile").then((m) => m.dockerFile));
  }
  switch (ext) {
    case "py":
      return (await import("@codemirror/lang-python")).python();
    case "js":
    case "mjs":
    case "cjs":
    case "jsx":
      return (await import("@codemirror/lang-javascript")).javascript({ jsx: ext === "jsx" });
    case "ts":
    case "mts":
    case "tsx":
      return (await import("@codemirror/lang-javascript")).javascript({ typescript: true, jsx: ext === "tsx" });
    case "md":
    case "markdown":
      return (await import("@codemirror/lang-markdown")).markdown();
    case "sh":
    case "bash":
      return legacy(import("@codemirror/legacy-modes/mode/shell").then((m) => m.shell));
    case "toml":
      return legacy(import("@codemirror/legacy-modes/mode/toml").then((m) => m.toml));
    default:
      if (name === ".bashrc" || name === ".profile") return legacy(import("@codemirror/legacy-modes/mode/shell").then((m) => m.shell));
      return null;
  }
}
