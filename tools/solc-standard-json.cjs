// Reads a standard-JSON compiler input on stdin and writes solc's standard-JSON output to argv[2].
// Imports that forge did not inline are read from disk relative to the working directory.
const fs = require('fs');
const path = require('path');
const solc = require(path.join(__dirname, 'node_modules', 'solc'));
const input = fs.readFileSync(0, 'utf8');
function findImports(p) {
  for (const base of [process.cwd(), path.join(__dirname, 'node_modules')]) {
    const full = path.resolve(base, p);
    if (fs.existsSync(full)) return { contents: fs.readFileSync(full, 'utf8') };
  }
  return { error: `not found: ${p}` };
}
fs.writeFileSync(process.argv[2], solc.compile(input, { import: findImports }));
