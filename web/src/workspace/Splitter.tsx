// A drag handle between two panels: pointer drag, or arrow keys when focused (Shift: bigger
// steps, Home/End: the limits). It reports a size in pixels; the page lays out with it.
import type { TargetedKeyboardEvent, TargetedPointerEvent } from "preact";

interface Props {
  /** "vertical": a bar between columns (drag left/right); "horizontal": between rows. */
  orientation: "vertical" | "horizontal";
  label: string;
  value: number;
  min: number;
  max: number;
  /** +1 if dragging right/down grows the panel, -1 if it shrinks it. */
  direction?: 1 | -1;
  onChange: (value: number) => void;
}

export function Splitter({ orientation, label, value, min, max, direction = 1, onChange }: Props) {
  const clamp = (v: number) => Math.round(Math.max(min, Math.min(max, v)));

  const onPointerDown = (event: TargetedPointerEvent<HTMLDivElement>) => {
    event.preventDefault();
    const handle = event.currentTarget;
    handle.setPointerCapture(event.pointerId);
    const start = orientation === "vertical" ? event.clientX : event.clientY;
    const startValue = value;
    const move = (e: PointerEvent) => {
      const pos = orientation === "vertical" ? e.clientX : e.clientY;
      onChange(clamp(startValue + direction * (pos - start)));
    };
    const up = () => {
      handle.removeEventListener("pointermove", move);
      handle.removeEventListener("pointerup", up);
      handle.removeEventListener("pointercancel", up);
    };
    handle.addEventListener("pointermove", move);
    handle.addEventListener("pointerup", up);
    handle.addEventListener("pointercancel", up);
  };

  const onKeyDown = (event: TargetedKeyboardEvent<HTMLDivElement>) => {
    const step = event.shiftKey ? 64 : 16;
    const grow = orientation === "vertical" ? ["ArrowRight"] : ["ArrowDown"];
    const shrink = orientation === "vertical" ? ["ArrowLeft"] : ["ArrowUp"];
    let next: number | null = null;
    if (grow.includes(event.key)) next = value + direction * step;
    else if (shrink.includes(event.key)) next = value - direction * step;
    else if (event.key === "Home") next = min;
    else if (event.key === "End") next = max;
    if (next === null) return;
    event.preventDefault();
    onChange(clamp(next));
  };

  return (
    <div
      class={`ws-splitter ws-splitter--${orientation}`}
      role="separator"
      tabIndex={0}
      aria-label={label}
      aria-orientation={orientation}
      aria-valuenow={value}
      aria-valuemin={min}
      aria-valuemax={max}
      onPointerDown={onPointerDown}
      onKeyDown={onKeyDown}
    />
  );
}
