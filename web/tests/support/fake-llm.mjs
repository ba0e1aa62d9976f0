// A fake OpenAI-compatible model for agent jobs: `POST /v1/chat/completions` answered in the
// OpenAI format. The job kind is told apart by the system prompt's role (as the server's own
// tests do, crates/sandpit-server/tests/api/agents.rs); `replies[kind](userPrompt)` gives the
// text. A request whose user prompt contains `HOLD` is never answered (until `close()`), so a
// job can be watched, and cancelled, while it waits for the model.
import { createServer } from "node:http";

export const HOLD = "[hold the answer]";

const roles = [
  ["software engineer", "code"],
  ["QA engineer", "qa"],
  ["researcher", "research"],
  ["UX designer", "wireframe"],
  ["teacher", "pedagogy"],
];

export function kindOf(system) {
  return roles.find(([marker]) => system.includes(marker))?.[1] ?? "other";
}

/**
 * @param {Record<string, (user: string) => string>} replies
 * @returns {Promise<{ baseURL: string, requests: { kind: string, user: string }[], held: () => number, close: () => Promise<void> }>}
 */
export async function startFakeModel(replies) {
  const requests = [];
  const held = new Set();
  const server = createServer(async (req, res) => {
    if (req.method !== "POST" || req.url !== "/v1/chat/completions") {
      res.writeHead(404, { "content-type": "application/json" }).end('{"error": {"message": "no such route"}}');
      return;
    }
    let text = "";
    for await (const chunk of req) text += chunk;
    let body;
    try {
      body = JSON.parse(text);
    } catch {
      res.writeHead(400).end();
      return;
    }
    const system = body.messages?.[0]?.content ?? "";
    const user = body.messages?.[1]?.content ?? "";
    const kind = kindOf(system);
    requests.push({ kind, user });
    if (user.includes(HOLD)) {
      held.add(res);
      res.on("close", () => held.delete(res));
      return;
    }
    const reply = replies[kind];
    if (!reply) {
      res.writeHead(500, { "content-type": "application/json" }).end(`{"error": {"message": "no reply for ${kind}"}}`);
      return;
    }
    res.writeHead(200, { "content-type": "application/json" }).end(
      JSON.stringify({
        id: `chatcmpl-${requests.length}`,
        object: "chat.completion",
        model: body.model,
        choices: [{ index: 0, finish_reason: "stop", message: { role: "assistant", content: reply(user) } }],
      }),
    );
  });
  await new Promise((resolve) => server.listen(0, "127.0.0.1", resolve));
  const { port } = server.address();
  return {
    baseURL: `http://127.0.0.1:${port}/v1`,
    requests,
    held: () => held.size,
    close: async () => {
      server.closeAllConnections();
      await new Promise((resolve) => server.close(resolve));
    },
  };
}

/** The environment for a sandpit server whose every agent kind goes to `baseURL`, one attempt each. */
export function llmEnv(baseURL) {
  return {
    SANDPIT_LLM__PROVIDERS__MAIN__KIND: "openai",
    SANDPIT_LLM__PROVIDERS__MAIN__BASE_URL: baseURL,
    SANDPIT_LLM__PROVIDERS__MAIN__MODEL: "fake",
    SANDPIT_LLM__PROVIDERS__MAIN__MAX_TOKENS: "4000",
    // A held answer waits for the test to cancel it, not for the provider's timeout.
    SANDPIT_LLM__PROVIDERS__MAIN__TIMEOUT_MS: "300000",
    SANDPIT_LLM__ROUTES__FALLBACK: "main",
    SANDPIT_JOBS__MAX_ATTEMPTS: "1",
  };
}
