// The workspace's dismissible alert line (the lab page and the project page share it).
export function Banner({ message, onDismiss }: { message: string | null; onDismiss: () => void }) {
  if (!message) return null;
  return (
    <div class="ws-alert ws-banner" role="alert">
      <span>{message}</span>
      <button type="button" class="ws-button" onClick={onDismiss}>
        Dismiss
      </button>
    </div>
  );
}
