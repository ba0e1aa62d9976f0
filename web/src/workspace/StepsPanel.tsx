// The lab's steps: a list to move between them (passed ones ticked, the current one marked) and
// the current step's text.
import { useMemo } from "preact/hooks";
import type { LabStep } from "../api/labs";
import { commandOf, renderMarkdown } from "./markdown";

interface Props {
  steps: LabStep[];
  current: number;
  onSelect: (index: number) => void;
  onRun: (command: string) => void;
}

export function StepsPanel({ steps, current, onSelect, onRun }: Props) {
  const step = steps[current];
  const html = useMemo(() => (step ? renderMarkdown(step.markdown) : ""), [step]);

  const onClick = (event: MouseEvent) => {
    const button = (event.target as HTMLElement).closest<HTMLButtonElement>("button[data-action]");
    if (!button) return;
    const code = button.closest(".ws-code")?.querySelector("code")?.textContent ?? "";
    if (button.dataset.action === "copy") {
      navigator.clipboard?.writeText(code).then(
        () => flash(button, "Copied"),
        () => flash(button, "Copy failed"),
      );
    } else if (button.dataset.action === "run") {
      const command = commandOf(code);
      onRun(command.endsWith("\n") ? command.replace(/\n/g, "\r") : `${command.replace(/\n/g, "\r")}\r`);
    }
  };

  return (
    <section class="ws-steps" aria-label="Steps">
      <nav aria-label="Lab steps">
        <ol class="ws-steps__list">
          {steps.map((s, i) => (
            <li key={s.id}>
              <button
                type="button"
                class={`ws-steps__item${i === current ? " is-current" : ""}`}
                aria-current={i === current ? "step" : undefined}
                onClick={() => onSelect(i)}
              >
                <span class="ws-steps__tick" aria-hidden="true">
                  {s.passed ? "✓" : `${i + 1}`}
                </span>
                <span>{s.title}</span>
                {s.passed ? <span class="visually-hidden"> (passed)</span> : null}
              </button>
            </li>
          ))}
        </ol>
      </nav>
      {step ? (
        <article class="ws-steps__text" aria-label={`Step ${current + 1}: ${step.title}`}>
          {/* Sanitised by renderMarkdown (DOMPurify). */}
          <div class="ws-markdown" onClick={onClick} dangerouslySetInnerHTML={{ __html: html }} />
          <div class="ws-steps__nav">
            <button type="button" class="ws-button" disabled={current === 0} onClick={() => onSelect(current - 1)}>
              Previous step
            </button>
            <span>
              Step {current + 1} of {steps.length}
            </span>
            <button type="button" class="ws-button" disabled={current >= steps.length - 1} onClick={() => onSelect(current + 1)}>
              Next step
            </button>
          </div>
        </article>
      ) : null}
    </section>
  );
}

function flash(button: HTMLButtonElement, text: string): void {
  const original = button.textContent;
  button.textContent = text;
  setTimeout(() => {
    button.textContent = original;
  }, 1500);
}
