// Step texts are Markdown from lab folders, which may come from third parties, and agent jobs'
// answers come from a language model: rendered with marked, then sanitised with DOMPurify
// before it reaches the DOM. Code blocks get a "Copy" button, and shell blocks a "Run in
// terminal" button (handled by the panel's click listener).
import DOMPurify from "dompurify";
import { Marked } from "marked";

const SHELL = new Set(["bash", "sh", "shell", "console", "zsh"]);

const escapeHtml = (s: string) =>
  s.replace(/&/g, "&amp;").replace(/</g, "&lt;").replace(/>/g, "&gt;").replace(/"/g, "&quot;");

/** A Markdown renderer; `run`: shell blocks get "Run in terminal" (only where there is one). */
function markedWith(run: boolean): Marked {
  return new Marked({
    gfm: true,
    renderer: {
      code({ text, lang }) {
        const language = (lang ?? "").trim().split(/\s+/)[0]?.toLowerCase() ?? "";
        const action =
          run && SHELL.has(language)
            ? '<button type="button" class="ws-button ws-code__action" data-action="run">Run in terminal</button>'
            : "";
        return (
          `<div class="ws-code"><div class="ws-code__actions">` +
          `<button type="button" class="ws-button ws-code__action" data-action="copy">Copy</button>${action}</div>` +
          `<pre><code${language ? ` class="language-${escapeHtml(language)}"` : ""}>${escapeHtml(text)}</code></pre></div>`
        );
      },
    },
  });
}

const withRun = markedWith(true);
const withoutRun = markedWith(false);

DOMPurify.addHook("afterSanitizeAttributes", (node) => {
  if (node.tagName === "A" && node.getAttribute("href")) {
    node.setAttribute("target", "_blank");
    node.setAttribute("rel", "noopener noreferrer");
  }
});

/**
 * Markdown → sanitised HTML (no scripts, handlers or `javascript:` URLs survive). `run: false`
 * where there is no terminal (a job's answer): code blocks get Copy only.
 */
export function renderMarkdown(markdown: string, options: { run?: boolean } = {}): string {
  const html = (options.run === false ? withoutRun : withRun).parse(markdown, { async: false });
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
