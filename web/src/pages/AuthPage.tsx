import type { TargetedSubmitEvent } from "preact";
import { useEffect, useRef, useState } from "preact/hooks";
import { ApiError, auth, rules, type User } from "../api";
import { Link } from "../router";
import { usePageTitle } from "../usePageTitle";

type Mode = "signin" | "signup";

const text = {
  signin: {
    title: "Sign in",
    heading: "Sign in to sandpit",
    submit: "Sign in",
    pending: "Signing in…",
    switchPrompt: "New to sandpit?",
    switchLink: { href: "/signup", label: "Create an account" },
  },
  signup: {
    title: "Sign up",
    heading: "Create your sandpit account",
    submit: "Sign up",
    pending: "Signing up…",
    switchPrompt: "Already have an account?",
    switchLink: { href: "/signin", label: "Sign in" },
  },
} as const;

function describe(error: unknown): string {
  if (error instanceof ApiError) return error.message;
  return "Something went wrong. Please try again.";
}

/** Whether the server offers GitHub sign-in; false until it says so (and on any error). */
function useGithubEnabled(): boolean {
  const [enabled, setEnabled] = useState(false);
  useEffect(() => {
    let live = true;
    auth.providers().then(
      (providers) => live && setEnabled(providers?.github === true),
      () => undefined,
    );
    return () => {
      live = false;
    };
  }, []);
  return enabled;
}

export function AuthPage({ mode, onSignedIn }: { mode: Mode; onSignedIn: (user: User) => void }) {
  const t = text[mode];
  usePageTitle(t.title);
  const github = useGithubEnabled();
  const [username, setUsername] = useState("");
  const [password, setPassword] = useState("");
  const [email, setEmail] = useState("");
  const [pending, setPending] = useState(false);
  const [error, setError] = useState<string | null>(null);
  const mounted = useRef(true);
  useEffect(
    () => () => {
      mounted.current = false;
    },
    [],
  );

  const onSubmit = async (event: TargetedSubmitEvent<HTMLFormElement>) => {
    event.preventDefault();
    if (pending) return;
    setPending(true);
    setError(null);
    try {
      const trimmedEmail = email.trim();
      const response =
        mode === "signin"
          ? await auth.login({ username, password })
          : await auth.signup({ username, password, ...(trimmedEmail ? { email: trimmedEmail } : {}) });
      onSignedIn(response.user);
    } catch (caught) {
      if (!mounted.current) return;
      setError(describe(caught));
      setPending(false);
    }
  };

  const signup = mode === "signup";
  return (
    <section class="card auth" aria-labelledby="auth-heading">
      <h1 id="auth-heading">{t.heading}</h1>
      <form class="form" onSubmit={onSubmit} aria-busy={pending}>
        <div class="field">
          <label for="username">Username</label>
          <input
            id="username"
            name="username"
            type="text"
            required
            autoFocus
            autoComplete="username"
            autoCapitalize="none"
            spellcheck={false}
            value={username}
            onInput={(e) => setUsername(e.currentTarget.value)}
            {...(signup
              ? {
                  minLength: rules.username.minLength,
                  maxLength: rules.username.maxLength,
                  pattern: rules.username.pattern,
                  title: rules.username.hint,
                  "aria-describedby": "username-hint",
                }
              : {})}
          />
          {signup && (
            <p id="username-hint" class="hint">
              {rules.username.hint}
            </p>
          )}
        </div>

        {signup && (
          <div class="field">
            <label for="email">
              Email <span class="optional">(optional)</span>
            </label>
            <input
              id="email"
              name="email"
              type="email"
              autoComplete="email"
              value={email}
              onInput={(e) => setEmail(e.currentTarget.value)}
            />
          </div>
        )}

        <div class="field">
          <label for="password">Password</label>
          <input
            id="password"
            name="password"
            type="password"
            required
            autoComplete={signup ? "new-password" : "current-password"}
            value={password}
            onInput={(e) => setPassword(e.currentTarget.value)}
            {...(signup
              ? {
                  minLength: rules.password.minLength,
                  maxLength: rules.password.maxLength,
                  "aria-describedby": "password-hint",
                }
              : {})}
          />
          {signup && (
            <p id="password-hint" class="hint">
              {rules.password.hint}
            </p>
          )}
        </div>

        {error !== null && (
          <p role="alert" class="alert">
            {error}
          </p>
        )}

        <button type="submit" class="button button--primary" disabled={pending}>
          {pending ? t.pending : t.submit}
        </button>
      </form>

      {github && (
        <>
          <p class="divider">
            <span>or</span>
          </p>
          <a class="button button--github" href={auth.githubUrl}>
            Sign in with GitHub
          </a>
        </>
      )}

      <p class="switch">
        {t.switchPrompt} <Link href={t.switchLink.href}>{t.switchLink.label}</Link>
      </p>
    </section>
  );
}
