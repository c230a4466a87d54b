// Validates an AsyncAPI document the way `asyncapi validate --fail-severity warn` does:
// the official parser (@asyncapi/parser, the AsyncAPI CLI's own) parses it, resolves
// every reference and applies the specification's ruleset; any error or warning fails.
// Usage: node asyncapi_validate.mjs <document>. Copied beside the pinned package.
import { readFile } from "node:fs/promises";
import { Parser } from "@asyncapi/parser";

const SEVERITY = ["error", "warning", "information", "hint"];
const path = process.argv[2];
const diagnostics = await new Parser().validate(await readFile(path, "utf8"), { source: path });
for (const d of diagnostics) {
  const where = (d.path || []).join("/");
  console.log(`${SEVERITY[d.severity] ?? d.severity} ${d.code} ${where}: ${d.message}`);
}
const failing = diagnostics.filter((d) => d.severity <= 1);
if (failing.length) {
  console.log(`${path} is not valid: ${failing.length} error(s) or warning(s)`);
  process.exit(1);
}
console.log(`${path} is valid`);
