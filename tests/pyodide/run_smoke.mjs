// Loads npm pyodide from node_modules (no network), mounts the core sources, the pure-Python dependencies and
// this folder, then runs smoke.run() and prints its JSON line. Usage: node run_smoke.mjs PYODIDE_DIR SRC DEPS HERE
import { pathToFileURL } from "node:url";
import path from "node:path";

const [pyodideDir, srcDir, depsDir, hereDir] = process.argv.slice(2);
const { loadPyodide } = await import(pathToFileURL(path.join(pyodideDir, "pyodide.mjs")).href);

const started = performance.now();
const py = await loadPyodide({ indexURL: pyodideDir + path.sep });
const loadMs = performance.now() - started;

for (const [host, mount] of [[srcDir, "/src"], [depsDir, "/deps"], [hereDir, "/smoke"]]) {
  py.FS.mkdirTree(mount);
  py.FS.mount(py.FS.filesystems.NODEFS, { root: host }, mount);
}
py.runPython("import sys; sys.path[:0] = ['/src', '/deps', '/smoke']");
const out = await py.runPythonAsync("import smoke\nawait smoke.run()");
const result = JSON.parse(out);
result.load_pyodide_ms = Math.round(loadMs);
console.log(JSON.stringify(result));
