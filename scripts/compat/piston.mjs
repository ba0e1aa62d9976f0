// piston-client (npm, by dthree) against sandpit's Piston-compatible API: the runtimes list and
// executions in several languages, through the client's own calls. The server URL carries the
// sandpit token as its password, the only credential this client can send.
// Usage: node piston.mjs http://sandpit:TOKEN@127.0.0.1:PORT/piston  (SANDPIT_PISTON_CLIENT
// names the client's index.js). Prints one JSON line per case for clients.py to check.
import { pathToFileURL } from "node:url";

const { piston } = await import(pathToFileURL(process.env.SANDPIT_PISTON_CLIENT).href);
const client = piston({ server: process.argv[2] });

const out = {};
out.runtimes = await client.runtimes();
out.python = await client.execute("python", "import sys\nprint(input()[::-1], sys.argv[1:])", { stdin: "sandpit" });
out.c = await client.execute("c", '#include <stdio.h>\nint main(){puts("from c");return 0;}');
out.compile_error = await client.execute("c", "int main() { return oops; }");
out.runtime_error = await client.execute("python", "import sys\nprint('partial')\nsys.exit(3)", { args: [] });
out.timeout = await client.execute("python", "while True:\n    pass", { runTimeout: 1000 });
out.files = await client.execute({
  language: "python",
  version: "*",
  files: [
    { name: "main.py", content: "from util import double\nprint(double(21))\n" },
    { name: "util.py", content: "def double(x):\n    return 2 * x\n" },
  ],
  args: [],
});
out.unknown = await client.execute({ language: "cobol", version: "*", files: [{ content: "x" }] });
console.log(JSON.stringify(out));
