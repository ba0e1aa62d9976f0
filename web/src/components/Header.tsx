import type { ComponentChildren, TargetedMouseEvent } from "preact";
import type { Session } from "../app";
import { Link, navigate, usePathname } from "../router";

/** An in-app link that tells assistive technology when it is the current page. */
function NavLink({ href, current, children }: { href: string; current: boolean; children: ComponentChildren }) {
  const onClick = (event: TargetedMouseEvent<HTMLAnchorElement>) => {
    if (event.defaultPrevented || event.button !== 0) return;
    if (event.metaKey || event.ctrlKey || event.shiftKey || event.altKey) return;
    event.preventDefault();
    navigate(href);
  };
  return (
    <a href={href} onClick={onClick} aria-current={current ? "page" : undefined} class="site-nav__link">
      {children}
    </a>
  );
}

const sections = [
  { href: "/labs", label: "Labs" },
  { href: "/playground", label: "Playground" },
  { href: "/projects", label: "Projects" },
  { href: "/apps", label: "Apps" },
  { href: "/database", label: "Database" },
  { href: "/sessions", label: "Sessions" },
  { href: "/account", label: "Account" },
];

export function Header({ session }: { session: Session }) {
  const pathname = usePathname();
  return (
    <header class="site-header">
      <a class="skip-link" href="#main">
        Skip to content
      </a>
      <div class="site-header__inner">
        <Link href="/" class="brand">
          sandpit
        </Link>
        {session.status === "signed-in" && (
          <nav aria-label="Main" class="site-nav site-nav--main">
            {sections.map((s) => (
              <NavLink key={s.href} href={s.href} current={pathname === s.href || pathname.startsWith(`${s.href}/`)}>
                {s.label}
              </NavLink>
            ))}
          </nav>
        )}
        <nav aria-label="Account" class="site-nav">
          {session.status === "signed-in" ? (
            <span class="site-nav__user">{session.user.username}</span>
          ) : session.status === "signed-out" ? (
            <>
              <Link href="/signin">Sign in</Link>
              <Link href="/signup">Sign up</Link>
            </>
          ) : null}
        </nav>
      </div>
    </header>
  );
}
