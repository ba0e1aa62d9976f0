// A job's text (a language model's answer: untrusted) as Markdown, sanitised by DOMPurify
// (`renderMarkdown`). Code blocks get Copy; there is no terminal here to run them in.
import { useMemo } from "preact/hooks";
import { renderMarkdown } from "../workspace/markdown";

export function Markdown({ text, class: className }: { text: string; class?: string }) {
  const html = useMemo(() => renderMarkdown(text, { run: false }), [text]);

  const onClick = (event: MouseEvent) => {
    const button = (event.target as HTMLElement).closest<HTMLButtonElement>("button[data-action='copy']");
    if (!button) return;
    const code = button.closest(".ws-code")?.querySelector("code")?.textContent ?? "";
    navigator.clipboard?.writeText(code).then(
      () => flash(button, "Copied"),
      () => flash(button, "Copy failed"),
    );
  };

  // Sanitised by renderMarkdown (DOMPurify).
  return <div class={`ws-markdown${className ? ` ${className}` : ""}`} onClick={onClick} dangerouslySetInnerHTML={{ __html: html }} />;
}

function flash(button: HTMLButtonElement, text: string): void {
  const original = button.textContent;
  button.textContent = text;
  setTimeout(() => {
    button.textContent = original;
  }, 1500);
}
