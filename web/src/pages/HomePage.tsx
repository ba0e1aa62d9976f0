import { useState } from "preact/hooks";
import { ApiError, auth, type User } from "../api";
import { usePageTitle } from "../usePageTitle";

function formatDate(iso: string): string | null {
  const date = new Date(iso);
  if (Number.isNaN(date.getTime())) return null;
  return date.toLocaleDateString(undefined, { year: "numeric", month: "long", day: "numeric" });
}

export function HomePage({ user, onSignedOut }: { user: User; onSignedOut: () => void }) {
  usePageTitle("Home");
  const [pending, setPending] = useState(false);
  const [error, setError] = useState<string | null>(null);

  const signOut = async () => {
    setPending(true);
    setError(null);
    try {
      await auth.logout();
      onSignedOut();
    } catch (caught) {
      // Already signed out on the server (expired session): the goal is reached anyway.
      if (caught instanceof ApiError && caught.isUnauthorized) {
        onSignedOut();
        return;
      }
      setError(caught instanceof ApiError ? caught.message : "Could not sign out. Please try again.");
      setPending(false);
    }
  };

  const since = formatDate(user.created_at);
  return (
    <section class="card home" aria-labelledby="home-heading">
      <h1 id="home-heading">Welcome, {user.username}</h1>
      <dl class="facts">
        <div>
          <dt>Role</dt>
          <dd>
            <span class="badge" data-testid="role">
              {user.role}
            </span>
          </dd>
        </div>
        {user.email && (
          <div>
            <dt>Email</dt>
            <dd>{user.email}</dd>
          </div>
        )}
        {since && (
          <div>
            <dt>Member since</dt>
            <dd>
              <time dateTime={user.created_at}>{since}</time>
            </dd>
          </div>
        )}
      </dl>

      <h2>For developers</h2>
      <ul class="links">
        <li>
          <a href="/api/docs">API docs</a> — browse and try the REST API
        </li>
        <li>
          <a href="/api/openapi.json">OpenAPI document</a> (JSON)
        </li>
      </ul>

      {error !== null && (
        <p role="alert" class="alert">
          {error}
        </p>
      )}
      <button type="button" class="button" onClick={signOut} disabled={pending}>
        {pending ? "Signing out…" : "Sign out"}
      </button>
    </section>
  );
}
