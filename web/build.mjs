// Builds the dashboard into dist/ (committed, and embedded into the quiver binary by CMake):
//   dist/index.html             the page, served at "/"
//   dist/assets/dashboard.js    src/main.js and its imports (apache-arrow included), minified
//   dist/assets/dashboard.css
// `node build.mjs --check` builds in memory and fails if dist/ differs from what the sources
// build (tests/test_dashboard.py runs it, so a stale committed bundle fails the tests).
import * as esbuild from 'esbuild';
import { readFileSync, writeFileSync, mkdirSync, readdirSync, rmSync } from 'node:fs';
import { dirname, join, relative } from 'node:path';
import { fileURLToPath } from 'node:url';

const here = dirname(fileURLToPath(import.meta.url));
const dist = join(here, 'dist');

async function buildOutputs() {
  const js = await esbuild.build({
    entryPoints: [join(here, 'src/main.js')],
    bundle: true,
    format: 'esm',
    minify: true,
    target: ['es2022'],
    legalComments: 'eof', // apache-arrow's license notice stays in the bundle
    charset: 'utf8',
    write: false,
    logLevel: 'warning',
  });
  const css = await esbuild.build({
    entryPoints: [join(here, 'src/dashboard.css')],
    bundle: true,
    minify: true,
    write: false,
    logLevel: 'warning',
  });
  return new Map([
    ['index.html', readFileSync(join(here, 'src/index.html'))],
    ['assets/dashboard.js', Buffer.from(js.outputFiles[0].contents)],
    ['assets/dashboard.css', Buffer.from(css.outputFiles[0].contents)],
  ]);
}

// Every file under dir, as paths relative to dist/.
function listFiles(dir) {
  const found = [];
  for (const entry of readdirSync(dir, { withFileTypes: true })) {
    const path = join(dir, entry.name);
    if (entry.isDirectory()) found.push(...listFiles(path));
    else found.push(relative(dist, path));
  }
  return found.sort();
}

const outputs = await buildOutputs();
if (process.argv.includes('--check')) {
  const problems = [];
  let present = [];
  try {
    present = listFiles(dist);
  } catch {
    problems.push('web/dist does not exist');
  }
  for (const [name, bytes] of outputs) {
    if (!present.includes(name)) problems.push(`web/dist/${name} is missing`);
    else if (!readFileSync(join(dist, name)).equals(bytes)) {
      problems.push(`web/dist/${name} differs from what the sources build`);
    }
  }
  for (const name of present) {
    if (!outputs.has(name)) problems.push(`web/dist/${name} is not built from the sources`);
  }
  if (problems.length) {
    console.error(`${problems.join('\n')}\nrun \`npm run build\` in web/ and commit web/dist`);
    process.exit(1);
  }
  console.log(`web/dist is up to date (${outputs.size} files)`);
} else {
  rmSync(dist, { recursive: true, force: true });
  for (const [name, bytes] of outputs) {
    mkdirSync(dirname(join(dist, name)), { recursive: true });
    writeFileSync(join(dist, name), bytes);
  }
  console.log(`built web/dist: ${[...outputs].map(([n, b]) => `${n} (${b.length} B)`).join(', ')}`);
}
