// `web-ext lint` on what ships.  dist/ is the universal unpacked build: one
// manifest for both browser families, so Firefox's linter notes the
// service_worker key it ignores (it uses background.scripts) — that one
// warning is expected there and nothing else is.  The Firefox store build
// (build-firefox/, the same files as its zip) must be entirely clean.
import { execFileSync } from "node:child_process";
import { join, dirname } from "node:path";
import { fileURLToPath } from "node:url";

const root = dirname(fileURLToPath(import.meta.url));
const EXPECTED_IN_DIST = new Set(["BACKGROUND_SERVICE_WORKER_IGNORED"]);

function lint(dir) {
  let out;
  try {
    out = execFileSync(join(root, "node_modules/.bin/web-ext"), ["lint", "--source-dir", dir, "--self-hosted", "--output", "json"], { cwd: root, encoding: "utf8" });
  } catch (error) {
    out = error.stdout; // web-ext exits non-zero when it finds errors
  }
  return JSON.parse(out);
}

let failed = false;
for (const [dir, allowed] of [["dist", EXPECTED_IN_DIST], ["build-firefox", new Set()]]) {
  const report = lint(join(root, dir));
  const problems = [...report.errors, ...report.warnings, ...report.notices].filter((p) => !allowed.has(p.code));
  const s = report.summary;
  console.log(`web-ext lint ${dir}: ${s.errors} errors, ${s.warnings} warnings, ${s.notices} notices` + (s.warnings > problems.length ? ` (expected: ${[...allowed].join(", ")})` : ""));
  for (const p of problems) console.log(`  ${p._type} ${p.code}: ${p.message} ${p.file ?? ""}`);
  if (problems.length) failed = true;
}
process.exit(failed ? 1 : 0);
