// Builds a JavaScript guest into a component of one of strata's worlds, with componentize-js
// (pinned in package.json; `npm ci` here installs it):
//
//   node build.mjs <app.js> <strata.wit> <world> <out.wasm>
//
// Every WASI feature componentize-js knows is disabled, so the component imports only
// strata:migrate/sql and strata:migrate/log, as the sandbox requires: no clock, randomness,
// standard output or network. The WIT is passed as text because componentize-js 0.22 cannot
// read a path outside its own folder.
import { componentize } from '@bytecodealliance/componentize-js';
import { readFile, writeFile } from 'node:fs/promises';

const [source, wit, world, out] = process.argv.slice(2);
if (!out) {
  console.error('usage: node build.mjs <app.js> <strata.wit> <world> <out.wasm>');
  process.exit(2);
}
const { component, imports } = await componentize({
  sourcePath: source,
  witWorld: await readFile(wit, 'utf8'),
  worldName: world,
  disableFeatures: ['stdio', 'random', 'clocks', 'http', 'fetch-event'],
});
const foreign = imports.filter(([iface]) => !iface.startsWith('strata:migrate/'));
if (foreign.length > 0) {
  console.error(`the component imports what strata does not offer: ${JSON.stringify(foreign)}`);
  process.exit(1);
}
await writeFile(out, component);
