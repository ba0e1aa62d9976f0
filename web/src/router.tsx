// A tiny History-API router: the current path as state, `navigate()` to change it, `<Link>` for
// in-app anchors. Anchors that leave the SPA (`/api/docs`, OAuth) are plain `<a>` elements.
import type { ComponentChildren, TargetedMouseEvent } from "preact";
import { useEffect, useLayoutEffect, useState } from "preact/hooks";

const listeners = new Set<() => void>();

function notify(): void {
  for (const listener of listeners) listener();
}

window.addEventListener("popstate", notify);

export function navigate(to: string, options: { replace?: boolean } = {}): void {
  if (to === currentPath()) return;
  if (options.replace) history.replaceState(null, "", to);
  else history.pushState(null, "", to);
  notify();
}

function currentPath(): string {
  return location.pathname + location.search;
}

/** The current pathname; re-renders the caller on every navigation. */
export function usePathname(): string {
  const [pathname, setPathname] = useState(location.pathname);
  useEffect(() => {
    const update = () => setPathname(location.pathname);
    listeners.add(update);
    update();
    return () => {
      listeners.delete(update);
    };
  }, []);
  return pathname;
}

interface LinkProps {
  href: string;
  class?: string;
  children?: ComponentChildren;
}

export function Link({ href, class: className, children }: LinkProps) {
  const handleClick = (event: TargetedMouseEvent<HTMLAnchorElement>) => {
    // Let the browser handle new-tab/window clicks and anything already handled.
    if (event.defaultPrevented || event.button !== 0) return;
    if (event.metaKey || event.ctrlKey || event.shiftKey || event.altKey) return;
    event.preventDefault();
    navigate(href);
  };
  return (
    <a href={href} class={className} onClick={handleClick}>
      {children}
    </a>
  );
}

/** Replaces the current history entry with `to` (a redirect, so Back does not bounce). */
export function Redirect({ to }: { to: string }) {
  useLayoutEffect(() => navigate(to, { replace: true }), [to]);
  return null;
}
