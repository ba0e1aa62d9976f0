// "Deploy as app" in the playground and a lab's workspace. The button is all these pages carry:
// the dialog behind it (and the apps client) loads when it is pressed, so they stay small.
import type { ComponentType } from "preact";
import { useRef, useState } from "preact/hooks";
import type { DeployDialogProps } from "./DeployDialog";

type Props = Omit<DeployDialogProps, "onClose"> & {
  /** The button's classes: each page's own button style. */
  class: string;
};

const loadDialog = () => import("./DeployDialog").then((m) => m.DeployDialog);

export function DeployAsApp({ class: className, ...dialog }: Props) {
  const [Dialog, setDialog] = useState<ComponentType<DeployDialogProps> | null>(null);
  const [open, setOpen] = useState(false);
  const [loading, setLoading] = useState(false);
  const [error, setError] = useState<string | null>(null);
  const buttonRef = useRef<HTMLButtonElement>(null);

  const show = () => {
    setError(null);
    if (Dialog) {
      setOpen(true);
      return;
    }
    setLoading(true);
    loadDialog().then(
      (loaded) => {
        setDialog(() => loaded);
        setOpen(true);
        setLoading(false);
      },
      () => {
        setError("Could not load the deploy dialog. Check your connection and try again.");
        setLoading(false);
      },
    );
  };

  return (
    <>
      <button type="button" ref={buttonRef} class={className} onClick={show} disabled={loading} aria-haspopup="dialog">
        {loading ? "Loading…" : "Deploy as app"}
      </button>
      {error !== null ? (
        <span role="alert" class="alert">
          {error}
        </span>
      ) : null}
      {open && Dialog ? (
        <Dialog
          {...dialog}
          onClose={() => {
            setOpen(false);
            buttonRef.current?.focus();
          }}
        />
      ) : null}
    </>
  );
}
