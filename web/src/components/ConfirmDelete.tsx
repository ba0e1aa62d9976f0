// Delete, then "Yes, delete <name>" or Cancel: the projects and apps lists, an app's page and the
// database page ask the same way.
// Focus goes to Cancel when asking, and back to Delete when cancelled.
import { useEffect, useRef, useState } from "preact/hooks";
import { errorMessage } from "../pages/CatalogPage";

interface Props {
  name: string;
  /** What deleting does, asked before it is done. */
  question: string;
  /** Deletes; a rejection is shown beside the buttons. */
  onConfirm: () => Promise<void>;
}

export function ConfirmDelete({ name, question, onConfirm }: Props) {
  const [confirming, setConfirming] = useState(false);
  const [pending, setPending] = useState(false);
  const [error, setError] = useState<string | null>(null);
  const cancelRef = useRef<HTMLButtonElement>(null);
  const deleteRef = useRef<HTMLButtonElement>(null);

  useEffect(() => {
    if (confirming) cancelRef.current?.focus();
  }, [confirming]);

  const remove = async () => {
    setPending(true);
    setError(null);
    try {
      await onConfirm();
    } catch (caught) {
      setError(errorMessage(caught));
      setPending(false);
    }
  };

  return (
    <>
      {confirming ? (
        <div class="confirm" role="group" aria-label={`Delete ${name}?`}>
          <p>{question}</p>
          <button type="button" class="button button--small button--danger" onClick={remove} disabled={pending}>
            {pending ? "Deleting…" : `Yes, delete ${name}`}
          </button>
          <button
            type="button"
            ref={cancelRef}
            class="button button--small"
            onClick={() => {
              setConfirming(false);
              requestAnimationFrame(() => deleteRef.current?.focus());
            }}
          >
            Cancel
          </button>
        </div>
      ) : (
        <button type="button" ref={deleteRef} class="button button--small button--danger" onClick={() => setConfirming(true)}>
          Delete<span class="visually-hidden"> {name}</span>
        </button>
      )}
      {error !== null && (
        <p role="alert" class="alert">
          {error}
        </p>
      )}
    </>
  );
}
