// Benchmark 6: how long the worker's imports of smsfailover.core take under npm pyodide (offline), in a fresh
// interpreter. Usage: node pyodide_import.mjs PYODIDE_DIR PYTHON_MODULES_DIR; prints one JSON line.
import { pathToFileURL } from "node:url";
import path from "node:path";

const [pyodideDir, modulesDir] = process.argv.slice(2);
const { loadPyodide } = await import(pathToFileURL(path.join(pyodideDir, "pyodide.mjs")).href);

const started = performance.now();
const py = await loadPyodide({ indexURL: pyodideDir + path.sep });
const loadMs = performance.now() - started;
py.FS.mkdirTree("/modules");
py.FS.mount(py.FS.filesystems.NODEFS, { root: modulesDir }, "/modules");
const importMs = py.runPython(`
import sys, time
sys.path.insert(0, "/modules")
started = time.perf_counter()
import smsfailover.core.messages_api, smsfailover.core.sql, smsfailover.core.router, smsfailover.core.auth
(time.perf_counter() - started) * 1000
`);
console.log(JSON.stringify({ load_pyodide_ms: loadMs, import_core_ms: importMs, python: py.runPython("import sys; sys.version.split()[0]") }));
