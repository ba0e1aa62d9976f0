// The playground as a test drives it.
import assert from "node:assert/strict";

/** Waits for the runtimes, picks Python and puts `code` in the main file. */
export async function pythonProgram(page, code) {
  const language = page.getByLabel("Language");
  await page.waitForFunction(() => {
    const select = document.querySelector("#runtime");
    return select instanceof HTMLSelectElement && !select.disabled && select.options.length > 0;
  });
  const python = await language.locator("option").evaluateAll((options) => options.map((o) => o.value).find((v) => v.startsWith("python")));
  assert.ok(python, "the server offers Python");
  await language.selectOption(python);
  await page.getByRole("tab", { name: /main\.py/ }).waitFor();
  await page.getByLabel("Contents of main.py").fill(code);
}
