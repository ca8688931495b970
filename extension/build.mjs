// Builds the extension: type-checks, bundles each entry point with esbuild,
// writes dist/ (loadable unpacked, with the development key so the id is
// fixed) and one zip per store in artifacts/ (no key: the stores assign ids).
// `node build.mjs --tests` instead bundles test/*.test.ts into build-tests/.
import { execFileSync } from "node:child_process";
import { cpSync, mkdirSync, readFileSync, readdirSync, rmSync, writeFileSync } from "node:fs";
import { dirname, join } from "node:path";
import { fileURLToPath } from "node:url";
import * as esbuild from "esbuild";

const root = dirname(fileURLToPath(import.meta.url));
const bin = (name) => join(root, "node_modules", ".bin", name);
const run = (cmd, args) => execFileSync(cmd, args, { cwd: root, stdio: "inherit" });

if (process.argv.includes("--tests")) {
  const out = join(root, "build-tests");
  rmSync(out, { recursive: true, force: true });
  const tests = readdirSync(join(root, "test")).filter((f) => f.endsWith(".test.ts"));
  await esbuild.build({
    entryPoints: tests.map((f) => join(root, "test", f)),
    outdir: out,
    outExtension: { ".js": ".mjs" },
    bundle: true,
    platform: "node",
    format: "esm",
    target: "node20",
    packages: "external",
    logLevel: "warning",
  });
  process.exit(0);
}

run(bin("tsc"), ["--noEmit", "-p", "."]);

const pkg = JSON.parse(readFileSync(join(root, "package.json"), "utf8"));
const dist = join(root, "dist");
rmSync(dist, { recursive: true, force: true });
rmSync(join(root, "build-firefox"), { recursive: true, force: true });
mkdirSync(dist, { recursive: true });

await esbuild.build({
  entryPoints: {
    background: join(root, "src/background/main.ts"),
    "cis-auth": join(root, "src/page/cis-auth.ts"),
    relay: join(root, "src/content/relay.ts"),
    prompt: join(root, "src/prompt/prompt.ts"),
  },
  outdir: dist,
  bundle: true,
  format: "iife",
  target: ["chrome111", "firefox128"],
  legalComments: "none",
  logLevel: "warning",
});

cpSync(join(root, "src/prompt/prompt.html"), join(dist, "prompt.html"));
cpSync(join(root, "src/prompt/prompt.css"), join(dist, "prompt.css"));
cpSync(join(root, "_locales"), join(dist, "_locales"), { recursive: true });
cpSync(join(root, "managed_schema.json"), join(dist, "managed_schema.json"));

const manifest = JSON.parse(readFileSync(join(root, "manifest.json"), "utf8"));
manifest.version = pkg.version;
const storeManifest = { ...manifest };
// The development key fixes the unpacked extension's id (ekiaedepebiljeejbccahljdhmdiocpb).
manifest.key = readFileSync(join(root, "devkey.pub.b64"), "utf8").trim();
writeFileSync(join(dist, "manifest.json"), JSON.stringify(manifest, null, 2) + "\n");

// Store zips: the same files, without the development key (the stores assign
// ids), each without the background key its browser ignores and warns about.
const stage = join(root, "stage");
const artifacts = join(root, "artifacts");
rmSync(artifacts, { recursive: true, force: true });
const stores = {
  "chrome-web-store": (m) => ({ ...m, background: { service_worker: m.background.service_worker } }),
  "addons-mozilla-org": (m) => {
    const { minimum_chrome_version: _chromeOnly, ...rest } = m;
    return { ...rest, background: { scripts: m.background.scripts } };
  },
};
for (const [store, tailor] of Object.entries(stores)) {
  rmSync(stage, { recursive: true, force: true });
  cpSync(dist, stage, { recursive: true });
  writeFileSync(join(stage, "manifest.json"), JSON.stringify(tailor(storeManifest), null, 2) + "\n");
  run(bin("web-ext"), [
    "build", "--source-dir", stage, "--artifacts-dir", artifacts,
    "--filename", `cisbridge-${pkg.version}-${store}.zip`, "--overwrite-dest",
  ]);
  if (store === "addons-mozilla-org") cpSync(stage, join(root, "build-firefox"), { recursive: true });
}
rmSync(stage, { recursive: true, force: true });
console.log(`built dist/ and artifacts/ for cisbridge extension ${pkg.version}`);
