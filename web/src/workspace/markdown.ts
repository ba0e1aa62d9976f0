// Step texts are Markdown from lab folders, which may come from third parties: rendered with
// marked, then sanitised with DOMPurify before it reaches the DOM. Code blocks get a "Copy"
// button, and shell blocks a "Run in terminal" button (handled by the panel's click listener).
import DOMPurify from "dompurify";
import { Marked } from "marked";

const SHELL = new Set(["bash", "sh", "shell", "console", "zsh"]);

const escapeHtml = (s: string) =>
  s.replace(/&/g, "&amp;").replace(/</g, "&lt;").replace(/>/g, "&gt;").replace(/"/g, "&quot;");

const marked = new Marked({
  gfm: true,
  renderer: {
    code({ text, lang }) {
      const language = (lang ?? "").trim().split(/\s+/)[0]?.toLowerCase() ?? "";
      const run = SHELL.has(language)
        ? '<button type="button" class="ws-button ws-code__action" data-action="run">Run in terminal</button>'
        : "";
      return (
        `<div class="ws-code"><div class="ws-code__actions">` +
        `<button type="button" class="ws-button ws-code__action" data-action="copy">Copy</button>${run}</div>` +
        `<pre><code${language ? ` class="language-${escapeHtml(language)}"` : ""}>${escapeHtml(text)}</code></pre></div>`
      );
    },
  },
});

DOMPurify.addHook("afterSanitizeAttributes", (node) => {
  if (node.tagName === "A" && node.getAttribute("href")) {
    node.setAttribute("target", "_blank");
    node.setAttribute("rel", "noopener noreferrer");
  }
});

/** Markdown → sanitised HTML (no scripts, handlers or `javascript:` URLs survive). */
export function renderMarkdown(markdown: string): string {
  const html = marked.parse(markdown, { async: false });
  return DOMPurify.sanitize(html, { ADD_ATTR: ["target"] });
}

/** The command of a shell block, for "Run in terminal": prompts (`$ `) stripped, one line per command. */
export function commandOf(code: string): string {
  return code
    .replace(/\n+$/, "")
    .split("\n")
    .map((line) => line.replace(/^\$ /, ""))
    .join("\n");
}
