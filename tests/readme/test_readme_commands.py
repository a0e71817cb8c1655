"""The README as written (issue 15): on a fresh clone, in a fresh shell, after `make dev`, every command of its
quick start and of its SDK section (the Python snippet, how to run it, the CLI's commands) works verbatim.

A fresh clone: the committed HEAD of the repository these tests run from (CI runs them on a clean clone, so
that is what a user gets; uncommitted changes are not in it). A fresh shell: `bash -c` in an environment of
HOME, a login shell's PATH and LANG only (plus the machine's CA bundle and proxy settings, when set), the clone
as working directory; a command runs after the `export` lines that come before it in the README, as in one
terminal. The README's own `make dev` runs in the
background, and is stopped as a user does (Ctrl-C: SIGINT to its process group). `make test` is this suite
(CI runs it verbatim, `.ci/run`): here only its target is checked, with `make -n test`. The deploy section
needs a Cloudflare account and is not run.
"""

from __future__ import annotations

import argparse
import ast
import contextlib
import json
import os
import re
import shlex
import shutil
import signal
import socket
import subprocess
import tempfile
import time
from collections.abc import Callable, Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any, NoReturn

import httpx2
import pytest

HERE = Path(__file__).resolve().parent
IN_CI = os.environ.get("CI", "").lower() in {"1", "true", "yes"}
LOGIN_PATH = "/usr/local/sbin:/usr/local/bin:/usr/sbin:/usr/bin:/sbin:/bin"
# The machine's network settings, passed on when set: a user's shell has what their network needs (here a CA
# bundle for a TLS-inspecting proxy); nothing the README asks for. Without them, fetching a package fails.
NETWORK_VARIABLES = (
    "SSL_CERT_FILE", "SSL_CERT_DIR", "NODE_EXTRA_CA_CERTS", "REQUESTS_CA_BUNDLE", "CURL_CA_BUNDLE", "PIP_CERT",
    "GIT_SSL_CAINFO", "HTTP_PROXY", "HTTPS_PROXY", "ALL_PROXY", "NO_PROXY", "http_proxy", "https_proxy",
    "all_proxy", "no_proxy",
)  # fmt: skip
DEV_PORTS = {"origin": 8000, "edge": 8787, "simulator": 8025}
ORIGIN, EDGE, SIMULATOR = (f"http://127.0.0.1:{port}" for port in DEV_PORTS.values())
QUICK_START, SDK = "Quick start", "Using the SDK"
SHELL_LANGUAGES = frozenset({"bash", "sh", "shell"})
DEV_READY_TIMEOUT_S = 420.0  # a fresh clone's `make dev` bootstraps first (uv sync, npm ci: from their caches)
DEV_STOP_TIMEOUT_S = 60.0
COMMAND_TIMEOUT_S = 180.0
DELIVERY_TIMEOUT_S = 20.0
POLL_INTERVAL_S = 0.25

# One run per CLI command the README names, in a fresh shell after the quick start's exports: every command takes
# `--json`. `{csv}` is a two-row file in the clone. A command named in the README but missing here fails the test.
CLI_RUNS = {
    "send": "uv run smsfailover send --workspace 15213 --to +16266635938 --content 'CLI paragraph' --json",
    "status": "uv run smsfailover status --workspace 15213 --json",
    "settings": "uv run smsfailover settings --workspace 15213 --json",
    "reset-breaker": "uv run smsfailover reset-breaker --json",
    "unknowns": "uv run smsfailover unknowns --workspace 15213 --json",
    "broadcast": "uv run smsfailover broadcast --workspace 15213 --csv {csv} --broadcast-id readme --json",
    "token": "uv run smsfailover token --workspace 15213 --json",
}
BROADCAST_ROWS = (("+16266635938", "README broadcast row 1"), ("+16266635938", "README broadcast row 2"))


# -- the README, parsed by headings ---------------------------------------------------------------------------


class ReadmeChanged(AssertionError):
    """The README no longer has what this test runs: a section, a code block or a command it looks for."""


@dataclass(frozen=True, slots=True)
class CodeBlock:
    language: str
    text: str


@dataclass(frozen=True, slots=True)
class Section:
    title: str
    prose: str  # the section's text outside its code blocks
    blocks: tuple[CodeBlock, ...]

    def code(self, languages: frozenset[str]) -> list[CodeBlock]:
        return [block for block in self.blocks if block.language in languages]


def parse_sections(markdown: str) -> dict[str, Section]:
    """`## ` headings outside code blocks start sections; the text before the first one is the section ''."""
    sections: dict[str, Section] = {}
    title, prose, blocks = "", list[str](), list[CodeBlock]()
    fence: list[str] | None = None
    language = ""
    for line in markdown.splitlines():
        if fence is not None:
            if line.startswith("```"):
                blocks.append(CodeBlock(language, "\n".join(fence)))
                fence = None
            else:
                fence.append(line)
        elif line.startswith("```"):
            fence, language = [], line[3:].strip()
        elif line.startswith("## "):
            sections[title] = Section(title, "\n".join(prose), tuple(blocks))
            title, prose, blocks = line[3:].strip(), [], []
        else:
            prose.append(line)
    if fence is not None:
        raise ReadmeChanged(f"README.md: a code block in section {title!r} is never closed")
    sections[title] = Section(title, "\n".join(prose), tuple(blocks))
    return sections


def section(sections: dict[str, Section], title: str) -> Section:
    if title not in sections:
        raise ReadmeChanged(f"README.md has no '## {title}' section (it has: {', '.join(t for t in sections if t)})")
    return sections[title]


def shell_commands(block: CodeBlock) -> list[str]:
    """The block's commands as written, one a line (a trailing backslash joins the next); comment lines dropped."""
    commands: list[str] = []
    pending = ""
    for line in block.text.splitlines():
        pending += line
        if pending.endswith("\\"):
            pending = pending[:-1] + " "
            continue
        if pending.strip() and not pending.lstrip().startswith("#"):
            commands.append(pending.strip())
        pending = ""
    if pending.strip():
        commands.append(pending.strip())
    return commands


def words(command: str) -> list[str]:
    return shlex.split(command, comments=True)


def inline_commands(prose: str) -> list[str]:
    """Commands quoted in running text: `make TARGET` and `uv run ...` code spans."""
    spans = re.findall(r"`([^`\n]+)`", prose)
    return list(dict.fromkeys(s for s in spans if re.fullmatch(r"make [a-z][a-z-]*|uv run \S.*", s)))


@dataclass(frozen=True, slots=True)
class QuickStart:
    make_dev: str  # the README's `make dev` line, run in the background by the fixture
    make_test: str
    commands: tuple[str, ...]  # the other commands of its code blocks, in order
    inline: tuple[str, ...]  # commands in its running text (not `make dev` / `make test`)
    links: tuple[str, ...]  # the local pages it says to open

    def exports(self) -> list[str]:
        return [c for c in self.commands if words(c)[:1] == ["export"]]


def quick_start(sections: dict[str, Section]) -> QuickStart:
    found = section(sections, QUICK_START)
    blocks = found.code(SHELL_LANGUAGES)
    if not blocks:
        raise ReadmeChanged(f"README.md's {QUICK_START!r} section has no ```bash code block")
    commands = [command for block in blocks for command in shell_commands(block)]
    make_dev = [c for c in commands if words(c) == ["make", "dev"]]
    make_test = [c for c in commands if words(c) == ["make", "test"]]
    if len(make_dev) != 1 or len(make_test) != 1:
        raise ReadmeChanged(f"README.md's quick start should show `make dev` and `make test` once each: {commands}")
    others = tuple(c for c in commands if c not in (make_dev[0], make_test[0]))
    if not any(is_send(words(c)) for c in others):
        raise ReadmeChanged(f"README.md's quick start shows no `smsfailover send` command: {commands}")
    inline = tuple(c for c in inline_commands(found.prose) if c not in ("make dev", "make test"))
    links = tuple(re.findall(r"<(http://127\.0\.0\.1:[^>]+)>", found.prose))
    return QuickStart(make_dev[0], make_test[0], others, inline, links)


@dataclass(frozen=True, slots=True)
class SdkExample:
    script_name: str  # the file the README says to save the snippet as
    script: str
    commands: tuple[str, ...]  # how the README runs it
    to: str
    content: str


def sdk_example(sections: dict[str, Section]) -> SdkExample:
    found = section(sections, SDK)
    snippets = found.code(frozenset({"python"}))
    runs = found.code(SHELL_LANGUAGES)
    if len(snippets) != 1 or len(runs) != 1:
        raise ReadmeChanged(
            f"README.md's {SDK!r} section should have one ```python snippet and one ```bash block that runs it; "
            f"it has {len(snippets)} and {len(runs)}"
        )
    commands = tuple(shell_commands(runs[0]))
    names = [w for c in commands for w in words(c) if w.endswith(".py")]
    if len(names) != 1:
        raise ReadmeChanged(f"README.md's SDK commands should run the snippet as one `NAME.py`: {commands}")
    call = _send_message_keywords(snippets[0].text)
    return SdkExample(names[0], snippets[0].text + "\n", commands, call["to"], call["content"])


def _send_message_keywords(script: str) -> dict[str, str]:
    """The string arguments of the snippet's `send_message(...)` call."""
    try:
        tree = ast.parse(script)
    except SyntaxError as exc:
        raise ReadmeChanged(f"README.md's SDK snippet is not valid Python: {exc}") from exc
    for node in ast.walk(tree):
        if isinstance(node, ast.Call) and isinstance(node.func, ast.Attribute) and node.func.attr == "send_message":
            found = {
                k.arg: k.value.value
                for k in node.keywords
                if k.arg and isinstance(k.value, ast.Constant) and isinstance(k.value.value, str)
            }
            if not {"to", "content"} <= found.keys():
                raise ReadmeChanged("README.md's SDK snippet should pass `to=` and `content=` as strings")
            return found
    raise ReadmeChanged("README.md's SDK snippet calls no `send_message`")


def cli_commands(sections: dict[str, Section]) -> list[str]:
    """The commands the SDK section's CLI paragraph names: `The CLI (...): `send`, ... and `token` (...); every..."""
    prose = section(sections, SDK).prose
    paragraph = re.search(r"^The CLI \(.*?\):(.*?); every command", prose, flags=re.M | re.S)
    if paragraph is None:
        raise ReadmeChanged(f"README.md's {SDK!r} section has no paragraph 'The CLI (...): ...; every command ...'")
    spans = re.findall(r"`([^`]+)`", paragraph.group(1))
    names = [span.split()[0] for span in spans if not span.startswith("-")]
    if not names:
        raise ReadmeChanged("README.md's CLI paragraph names no command")
    return names


def is_send(argv: list[str]) -> bool:
    return "smsfailover" in argv and argv[argv.index("smsfailover") + 1 :][:1] == ["send"]


def send_target(argv: list[str]) -> tuple[str, str]:
    """The --to and --content of an `smsfailover send` command line."""
    parser = argparse.ArgumentParser(add_help=False)
    parser.add_argument("--to", required=True)
    parser.add_argument("--content", required=True)
    known, _ = parser.parse_known_args(argv[argv.index("send") + 1 :])
    return known.to, known.content


# -- a fresh clone, a fresh shell, the README's `make dev` --------------------------------------------------


@dataclass(frozen=True, slots=True)
class Ran:
    command: str
    returncode: int
    stdout: str
    stderr: str

    def report(self) -> str:
        return f"`{self.command}` exited {self.returncode}\n--- stdout\n{self.stdout}\n--- stderr\n{self.stderr}"


@dataclass(frozen=True, slots=True)
class FreshShell:
    """`bash -c` as a user's new terminal has it: HOME, a login PATH, LANG (and the machine's network settings);
    the clone as working directory."""

    cwd: Path

    @property
    def env(self) -> dict[str, str]:
        network = {name: os.environ[name] for name in NETWORK_VARIABLES if name in os.environ}
        return {"HOME": str(Path.home()), "PATH": LOGIN_PATH, "LANG": os.environ.get("LANG", "C.UTF-8"), **network}

    def popen(self, script: str, **kwargs: Any) -> subprocess.Popen[str]:
        return subprocess.Popen(
            ["/bin/bash", "-c", script], cwd=self.cwd, env=self.env, stdin=subprocess.DEVNULL, text=True,
            start_new_session=True, **kwargs,
        )  # fmt: skip

    def run(self, command: str, *, before: list[str] | None = None, timeout_s: float = COMMAND_TIMEOUT_S) -> Ran:
        """Run command after the lines `before` (the README's exports above it), in one `bash -c`."""
        proc = self.popen("\n".join([*(before or []), command]), stdout=subprocess.PIPE, stderr=subprocess.PIPE)
        try:
            out, err = proc.communicate(timeout=timeout_s)
        except subprocess.TimeoutExpired:
            _signal_group(proc.pid, signal.SIGKILL)
            out, err = proc.communicate()
            raise AssertionError(f"`{command}` did not finish within {timeout_s:.0f} s\n{out}\n{err}") from None
        return Ran(command, proc.returncode, out, err)


@dataclass(frozen=True, slots=True)
class DevClone:
    """The fresh clone with the README's `make dev` running in it."""

    clone: Path
    shell: FreshShell
    sections: dict[str, Section]
    make_dev_log: Path
    timings: dict[str, float]

    def received(self, to: str, body: str) -> int:
        """How many times the provider simulator received this To+Body."""
        listing = httpx2.get(f"{SIMULATOR}/_sim/messages", timeout=5).json()
        digits = re.sub(r"\D", "", to)
        return sum(
            entry["count"]
            for entry in listing["by_to_and_body"]
            if re.sub(r"\D", "", entry["to"]) == digits and entry["body"] == body
        )

    def wait_received_once(self, to: str, body: str) -> None:
        poll(lambda: self.received(to, body) >= 1, DELIVERY_TIMEOUT_S, f"the provider receiving {body!r}")
        assert self.received(to, body) == 1, f"the provider received {body!r} more than once"

    def log_tail(self, lines: int = 40) -> str:
        return "\n".join(self.make_dev_log.read_text(errors="replace").splitlines()[-lines:])


def poll(done: Callable[[], bool], timeout_s: float, what: str) -> None:
    deadline = time.monotonic() + timeout_s
    while not done():
        if time.monotonic() > deadline:
            raise AssertionError(f"timed out after {timeout_s:.0f} s waiting for {what}")
        time.sleep(POLL_INTERVAL_S)


def _signal_group(pgid: int, signum: signal.Signals) -> None:
    with contextlib.suppress(ProcessLookupError, PermissionError):
        os.killpg(pgid, signum)


def _busy_dev_ports() -> list[str]:
    busy = []
    for name, port in DEV_PORTS.items():
        with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as sock:
            sock.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
            try:
                sock.bind(("127.0.0.1", port))
            except OSError:
                busy.append(f"{port} ({name})")
    return busy


def _unavailable(reason: str) -> NoReturn:
    if IN_CI:
        pytest.fail(f"{reason}: CI must run the README test")
    pytest.skip(reason)


def _git(*args: str, cwd: Path) -> str:
    done = subprocess.run(["git", *args], cwd=cwd, capture_output=True, text=True, timeout=120, check=False)
    assert done.returncode == 0, f"git {' '.join(args)} failed: {done.stderr}"
    return done.stdout.strip()


def _fresh_clone(into: Path) -> Path:
    """A clone of the committed HEAD of the repository this file is in."""
    if shutil.which("git") is None:
        _unavailable("git is not installed")
    probe = subprocess.run(["git", "rev-parse", "--show-toplevel"], cwd=HERE, capture_output=True, text=True)
    if probe.returncode != 0:
        _unavailable(f"{HERE} is not in a git checkout, so there is no committed HEAD to clone")
    repo = Path(probe.stdout.strip())
    head = _git("rev-parse", "HEAD", cwd=repo)
    clone = into / "smsfailover"
    _git("clone", "--quiet", str(repo), str(clone), cwd=into)
    _git("checkout", "--quiet", "--detach", head, cwd=clone)
    return clone


def _processes_in(directory: Path) -> list[tuple[int, str]]:
    """Processes working in directory or naming it on their command line (the stack's, when all went well: none)."""
    found = []
    for entry in Path("/proc").iterdir():
        if not entry.name.isdigit() or int(entry.name) == os.getpid():
            continue
        try:
            cwd = os.readlink(entry / "cwd")
            cmdline = (entry / "cmdline").read_bytes().replace(b"\0", b" ").decode(errors="replace")
        except OSError:  # gone meanwhile, or a zombie
            continue
        if cwd == str(directory) or cwd.startswith(f"{directory}/") or str(directory) in cmdline:
            found.append((int(entry.name), cmdline.strip()))
    return found


def _stop_make_dev(proc: subprocess.Popen[str]) -> None:
    """Ctrl-C in make dev's terminal: SIGINT to its process group; SIGKILL if it has not stopped in time."""
    if proc.poll() is None:
        _signal_group(proc.pid, signal.SIGINT)
        try:
            proc.wait(timeout=DEV_STOP_TIMEOUT_S)
        except subprocess.TimeoutExpired:
            _signal_group(proc.pid, signal.SIGKILL)
            proc.wait(timeout=10)
    _signal_group(proc.pid, signal.SIGKILL)  # anything of its group that outlived make


@pytest.fixture(scope="module")
def dev_clone() -> Iterator[DevClone]:
    busy = _busy_dev_ports()
    if busy:
        _unavailable(f"the README's `make dev` needs 127.0.0.1 ports {', '.join(busy)}: in use here")
    base = Path(tempfile.mkdtemp(prefix="smsfailover-readme-")).resolve()
    timings: dict[str, float] = {}
    proc: subprocess.Popen[str] | None = None
    try:
        started = time.monotonic()
        clone = _fresh_clone(base)
        timings["clone"] = time.monotonic() - started
        sections = parse_sections((clone / "README.md").read_text())
        make_dev = quick_start(sections).make_dev
        shell = FreshShell(clone)
        log = base / "make-dev.log"
        with log.open("w") as out:
            proc = shell.popen(make_dev, stdout=out, stderr=subprocess.STDOUT)
        dev = DevClone(clone, shell, sections, log, timings)
        started = time.monotonic()
        _wait_ready(proc, dev)
        timings["make dev until ready"] = time.monotonic() - started
        yield dev
    finally:
        started = time.monotonic()
        if proc is not None:
            _stop_make_dev(proc)
        timings["make dev stop"] = time.monotonic() - started
        leftovers = _processes_in(base)
        for pid, _ in leftovers:
            with contextlib.suppress(ProcessLookupError):
                os.kill(pid, signal.SIGKILL)
        shutil.rmtree(base, ignore_errors=True)
        print(f"README test timings (s): { {k: round(v, 1) for k, v in timings.items()} }")
    assert not leftovers, f"`make dev` (or a README command) left processes behind: {leftovers}"
    still_open = [port for port in DEV_PORTS.values() if _answers(port)]
    assert not still_open, f"ports still answering after `make dev` stopped: {still_open}"


def _answers(port: int) -> bool:
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as sock:
        sock.settimeout(1)
        return sock.connect_ex(("127.0.0.1", port)) == 0


def _wait_ready(proc: subprocess.Popen[str], dev: DevClone) -> None:
    """Until the origin and the edge say healthy and the simulator answers, within a bound; fail if make exits."""
    probes = (f"{ORIGIN}/v1/health", f"{EDGE}/v1/health", f"{SIMULATOR}/_sim/messages")
    deadline = time.monotonic() + DEV_READY_TIMEOUT_S
    with httpx2.Client(timeout=2) as http:
        while True:
            if proc.poll() is not None:
                raise AssertionError(f"`make dev` exited {proc.returncode} before it was ready:\n{dev.log_tail()}")
            with contextlib.suppress(httpx2.HTTPError):
                if all(http.get(url).status_code == 200 for url in probes):
                    return
            if time.monotonic() > deadline:
                raise AssertionError(f"`make dev` not ready within {DEV_READY_TIMEOUT_S:.0f} s:\n{dev.log_tail()}")
            time.sleep(POLL_INTERVAL_S)


# -- the tests ------------------------------------------------------------------------------------------------


def test_the_readme_shows_the_commands_this_file_runs() -> None:
    """Fast and without a clone: the sections and blocks are where the slow tests look for them."""
    sections = parse_sections((HERE.parents[1] / "README.md").read_text())

    start = quick_start(sections)
    example = sdk_example(sections)
    names = cli_commands(sections)

    assert start.exports(), "the quick start exports nothing: the CLI needs SMSFAILOVER_ENV=development"
    _compile_as_script(example)
    assert set(names) == set(CLI_RUNS), f"the README's CLI commands {names} differ from this file's {list(CLI_RUNS)}"


def _compile_as_script(example: SdkExample) -> None:
    """A user copies the snippet into a file and runs it: top-level `await` / `async with` would not run."""
    try:
        compile(example.script, example.script_name, "exec", dont_inherit=True)
    except SyntaxError as exc:
        raise AssertionError(f"README.md's SDK snippet does not run as a script: {exc} (asyncio.run it)") from exc


@pytest.mark.e2e
@pytest.mark.slow
@pytest.mark.pyodide
def test_quick_start_commands_work_verbatim_in_a_fresh_shell(dev_clone: DevClone) -> None:
    start = quick_start(dev_clone.sections)
    shell = dev_clone.shell
    dry_run = shell.run(f"make -n {words(start.make_test)[1]}")
    assert dry_run.returncode == 0, dry_run.report()

    before: list[str] = []
    sends: list[tuple[str, str]] = []
    for command in (*start.commands, *start.inline):
        started = time.monotonic()
        ran = shell.run(command, before=before)
        dev_clone.timings[command[:40]] = time.monotonic() - started
        assert ran.returncode == 0, f"{ran.report()}\n--- make dev\n{dev_clone.log_tail()}"
        argv = words(command)
        if argv[:1] == ["export"]:
            before.append(command)
        if is_send(argv):
            assert not ran.stdout.startswith("unknown"), ran.report()
            sends.append(send_target(argv))
            dev_clone.wait_received_once(*sends[-1])
        if argv[-2:] == ["token", "--operator"]:
            assert ran.stdout.strip().count(".") == 2, f"not a JWT: {ran.report()}"
        if argv[:2] == ["make", "demo"]:
            assert "duplicates: 0" in ran.stdout, ran.report()

    for to, content in sends:  # after everything else ran: still exactly once
        assert dev_clone.received(to, content) == 1
    for url in start.links:  # "Then open <http://127.0.0.1:8000/settings/...>"
        assert httpx2.get(url, follow_redirects=True, timeout=10).status_code == 200, url


@pytest.mark.e2e
@pytest.mark.slow
@pytest.mark.pyodide
def test_the_sdk_snippet_runs_as_the_readme_shows(dev_clone: DevClone) -> None:
    example = sdk_example(dev_clone.sections)
    _compile_as_script(example)
    (dev_clone.clone / example.script_name).write_text(example.script)

    before: list[str] = []
    for command in example.commands:  # a new terminal: only the exports of this block
        ran = dev_clone.shell.run(command, before=before)
        assert ran.returncode == 0, f"{ran.report()}\n--- make dev\n{dev_clone.log_tail()}"
        if words(command)[:1] == ["export"]:
            before.append(command)

    dev_clone.wait_received_once(example.to, example.content)


@pytest.mark.e2e
@pytest.mark.slow
@pytest.mark.pyodide
def test_every_cli_command_the_readme_names_runs_with_json(dev_clone: DevClone) -> None:
    names = cli_commands(dev_clone.sections)
    assert set(names) == set(CLI_RUNS), f"the README's CLI commands {names} differ from this file's {list(CLI_RUNS)}"
    shell, exports = dev_clone.shell, quick_start(dev_clone.sections).exports()
    usage = shell.run("uv run smsfailover --help", before=exports)
    assert usage.returncode == 0, usage.report()
    listed = re.search(r"\{([a-z,-]+)\}", usage.stdout)
    assert listed is not None, usage.report()
    assert set(listed.group(1).split(",")) == set(names), "the README's CLI paragraph and `--help` disagree"

    csv = dev_clone.clone / "readme-rows.csv"
    csv.write_text("to,content\n" + "".join(f"{to},{content}\n" for to, content in BROADCAST_ROWS))
    results: dict[str, Any] = {}
    for name in names:
        ran = shell.run(CLI_RUNS[name].format(csv=csv.name), before=exports)
        assert ran.returncode == 0, f"{ran.report()}\n--- make dev\n{dev_clone.log_tail()}"
        results[name] = json.loads(ran.stdout)

    assert results["send"]["status"] != "unknown"
    dev_clone.wait_received_once("+16266635938", "CLI paragraph")
    assert (results["broadcast"]["sent"], results["broadcast"]["replayed"]) == (len(BROADCAST_ROWS), 0)
    again = shell.run(CLI_RUNS["broadcast"].format(csv=csv.name), before=exports)  # re-runnable: nothing twice
    assert again.returncode == 0, again.report()
    assert json.loads(again.stdout)["replayed"] == len(BROADCAST_ROWS), again.stdout
    for to, content in BROADCAST_ROWS:
        dev_clone.wait_received_once(to, content)
    assert shell.run("uv run smsfailover send", before=exports).returncode == 2  # exit codes: 2 usage
