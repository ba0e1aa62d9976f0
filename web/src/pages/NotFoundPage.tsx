import { Link } from "../router";
import { usePageTitle } from "../usePageTitle";

export function NotFoundPage({ pathname }: { pathname: string }) {
  usePageTitle("Page not found");
  return (
    <section class="card" aria-labelledby="notfound-heading">
      <h1 id="notfound-heading">Page not found</h1>
      <p>
        There is no page at <code>{pathname}</code>.
      </p>
      <p>
        <Link href="/">Go to the home page</Link>
      </p>
    </section>
  );
}
