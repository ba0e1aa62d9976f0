import type { ComponentType } from "preact";
import { useCallback, useEffect, useRef, useState } from "preact/hooks";
import { ApiError, auth, type User } from "./api";
import { Header } from "./components/Header";
import { AccountPage } from "./pages/AccountPage";
import { AuthPage } from "./pages/AuthPage";
import { CatalogPage } from "./pages/CatalogPage";
import { HomePage } from "./pages/HomePage";
import { NotFoundPage } from "./pages/NotFoundPage";
import { PlaygroundPage } from "./pages/PlaygroundPage";
import { ProjectsPage } from "./pages/ProjectsPage";
import { SessionsPage, SharedTerminalPage } from "./pages/SessionsPage";
import { Link, Redirect, navigate, usePathname } from "./router";

export type Session =
  | { status: "loading" }
  | { status: "signed-out" }
  | { status: "signed-in"; user: User }
  | { status: "error"; message: string };

/** Asks the server who we are; a 401 simply means "signed out". */
function useSession() {
  const [session, setSession] = useState<Session>({ status: "loading" });

  const load = useCallback((signal?: AbortSignal) => {
    setSession({ status: "loading" });
    auth.me(signal).then(
      (user) => setSession({ status: "signed-in", user }),
      (error: unknown) => {
        if (signal?.aborted) return;
        if (error instanceof ApiError && error.isUnauthorized) setSession({ status: "signed-out" });
        else setSession({ status: "error", message: error instanceof Error ? error.message : String(error) });
      },
    );
  }, []);

  useEffect(() => {
    const controller = new AbortController();
    load(controller.signal);
    return () => controller.abort();
  }, [load]);

  return { session, setSession, reload: () => load() };
}

/**
 * After a client-side navigation the element that had focus (a link, the sign-out button) is
 * usually gone; put focus where a keyboard or screen-reader user expects it: the page's
 * `autofocus` field, else its heading.
 */
function useFocusOnNavigation(key: string) {
  const first = useRef(true);
  useEffect(() => {
    if (first.current) {
      first.current = false;
      return;
    }
    const active = document.activeElement;
    if (active && active !== document.body && document.contains(active)) return;
    const target = document.querySelector<HTMLElement>("main [autofocus]") ?? document.querySelector<HTMLElement>("main h1");
    if (!target) return;
    if (target.tagName === "H1") target.tabIndex = -1;
    target.focus();
  }, [key]);
}

export function App() {
  const pathname = usePathname();
  const { session, setSession, reload } = useSession();
  useFocusOnNavigation(`${pathname} ${session.status}`);

  const onSignedIn = useCallback(
    (user: User) => {
      setSession({ status: "signed-in", user });
      navigate(afterSignIn(new URLSearchParams(window.location.search).get("next")));
    },
    [setSession],
  );
  const onSignedOut = useCallback(() => {
    setSession({ status: "signed-out" });
    navigate("/signin");
  }, [setSession]);

  return (
    <>
      <Header session={session} />
      <main id="main" class="main">
        <Route pathname={pathname} session={session} reload={reload} onSignedIn={onSignedIn} onSignedOut={onSignedOut} />
      </main>
    </>
  );
}

interface RouteProps {
  pathname: string;
  session: Session;
  reload: () => void;
  onSignedIn: (user: User) => void;
  onSignedOut: () => void;
}

function Route({ pathname, session, reload, onSignedIn, onSignedOut }: RouteProps) {
  if (session.status === "loading") {
    return (
      <p class="status" aria-busy="true">
        Loading…
      </p>
    );
  }
  if (session.status === "error") {
    return (
      <section class="card">
        <h1>Something went wrong</h1>
        <p role="alert" class="alert">
          {session.message}
        </p>
        <button type="button" class="button" onClick={reload}>
          Try again
        </button>
      </section>
    );
  }

  const signedIn = session.status === "signed-in";
  switch (pathname) {
    case "/signin":
    case "/signup":
      if (signedIn) return <Redirect to="/" />;
      return <AuthPage key={pathname} mode={pathname === "/signin" ? "signin" : "signup"} onSignedIn={onSignedIn} />;
    case "/":
      if (!signedIn) return <Redirect to="/signin" />;
      return (
        <>
          <nav class="start-links" aria-label="Get started">
            <Link href="/labs" class="button button--accent start-links__main">
              Browse the labs →
            </Link>
            <Link href="/playground" class="button">
              Open the playground
            </Link>
          </nav>
          <HomePage user={session.user} onSignedOut={onSignedOut} />
        </>
      );
  }
  // Back to this page after signing in (a shared terminal link, a lab).
  if (!signedIn) return <Redirect to={`/signin?next=${encodeURIComponent(pathname + window.location.search)}`} />;
  switch (pathname) {
    case "/labs":
      return <CatalogPage />;
    case "/sessions":
      return <SessionsPage />;
    case "/account":
      return <AccountPage user={session.user} onSignedOut={onSignedOut} />;
    case "/playground":
      return <PlaygroundPage />;
    case "/projects":
      return <ProjectsPage />;
    case "/apps":
      return <LazyPage key="apps" load={loadApps} props={{}} what="your apps" />;
    case "/database":
      return <LazyPage key="database" load={loadDatabase} props={{}} what="the database viewer" />;
  }
  const lab = /^\/labs\/([^/]+)\/?$/.exec(pathname);
  if (lab?.[1]) return <LazyPage key={lab[1]} load={loadLabWorkspace} props={{ slug: decodeURIComponent(lab[1]) }} what="the lab workspace" />;
  const project = /^\/projects\/([^/]+)\/?$/.exec(pathname);
  if (project?.[1]) return <LazyPage key={project[1]} load={loadProject} props={{ id: decodeURIComponent(project[1]) }} what="the project" />;
  const app = /^\/apps\/([^/]+)\/?$/.exec(pathname);
  if (app?.[1]) return <LazyPage key={app[1]} load={loadApp} props={{ id: decodeURIComponent(app[1]) }} what="the app" />;
  const share = /^\/share\/([^/]+)$/.exec(pathname);
  if (share?.[1]) return <SharedTerminalPage key={share[1]} sessionId={decodeURIComponent(share[1])} />;
  return <NotFoundPage pathname={pathname} />;
}

/** Where to go after signing in: `next` when it is a path of this site, else home. */
export function afterSignIn(next: string | null): string {
  return next && next.startsWith("/") && !next.startsWith("//") && !next.startsWith("/\\") ? next : "/";
}

// The lab workspace and a project's page (editor, terminal, diffs: most of the app's code) are
// their own chunks, loaded on demand; so are the apps pages and the database viewer, which few
// visits need.
const loadLabWorkspace = () => import("./pages/LabWorkspacePage").then((m) => m.LabWorkspacePage);
const loadProject = () => import("./pages/ProjectPage").then((m) => m.ProjectPage);
const loadApps = () => import("./pages/AppsPage").then((m) => m.AppsPage);
const loadApp = () => import("./pages/AppPage").then((m) => m.AppPage);
const loadDatabase = () => import("./pages/DatabasePage").then((m) => m.DatabasePage);

interface LazyProps<P> {
  load: () => Promise<ComponentType<P>>;
  props: P;
  /** For the error message: "Could not load <what>." */
  what: string;
}

/** A page from a lazy chunk: "Loading…" until it is there, an alert if it cannot be loaded. */
function LazyPage<P extends object>({ load, props, what }: LazyProps<P>) {
  const [page, setPage] = useState<{ Page: ComponentType<P> } | { error: string } | null>(null);
  useEffect(() => {
    load().then(
      (Page) => setPage({ Page }),
      () => setPage({ error: `Could not load ${what}. Check your connection and reload the page.` }),
    );
    // Once: `load` is one of the constants above, and another page has another key.
  }, []);
  if (page === null) {
    return (
      <p class="status" aria-busy="true">
        Loading…
      </p>
    );
  }
  if ("error" in page) {
    return (
      <p role="alert" class="alert">
        {page.error}
      </p>
    );
  }
  return <page.Page {...props} />;
}
