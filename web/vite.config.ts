import { resolve } from "node:path";
import { defineConfig } from "vite";

const root = import.meta.dirname;

// Two pages, built side by side into dist/:
//   index.html     the SPA (Preact), served at `/` and for every non-API path
//   api-docs.html  Swagger UI, served at `/api/docs`; it is ~1.7 MB, so it must stay out of the SPA
// Asset URLs are absolute (`/assets/...`) because both pages are served from paths that are not
// their file names.
export default defineConfig({
  base: "/",
  // JSX for Preact, same settings as tsconfig.json (stated here so the build does not depend on
  // Vite picking them up from tsconfig).
  oxc: {
    jsx: { runtime: "automatic", importSource: "preact" },
  },
  build: {
    outDir: "dist",
    emptyOutDir: true,
    target: "es2022",
    // Only the docs page's Swagger UI chunk is above the default limit; the SPA has its own budget,
    // checked by tests/bundle-size.test.mjs.
    chunkSizeWarningLimit: 2000,
    // Every browser the app targets (ES2022) supports <link rel="modulepreload">.
    modulePreload: { polyfill: false },
    rolldownOptions: {
      input: {
        index: resolve(root, "index.html"),
        "api-docs": resolve(root, "api-docs.html"),
      },
    },
  },
  server: {
    // `npm run dev` against a server on :8000 (SANDPIT_DEV_API overrides).
    proxy: {
      "/api": { target: process.env.SANDPIT_DEV_API ?? "http://127.0.0.1:8000", changeOrigin: false },
    },
  },
});
