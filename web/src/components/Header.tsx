import type { Session } from "../app";
import { Link } from "../router";

export function Header({ session }: { session: Session }) {
  return (
    <header class="site-header">
      <a class="skip-link" href="#main">
        Skip to content
      </a>
      <div class="site-header__inner">
        <Link href="/" class="brand">
          sandpit
        </Link>
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
