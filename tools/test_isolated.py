"""Each package's own tests, in an environment holding only what that package declares.

``.venv`` holds every package of the monorepo, so an import that a package forgot to declare
still works there. This tool catches it in two ways:

1. **Static** (seconds, always first): every third-party module a package's ``src`` imports must
   be provided by a distribution in its own ``dependencies``; its ``tests`` may also use its
   ``test`` extra. Imports guarded by ``except ImportError`` and ``if TYPE_CHECKING:`` are
   optional and skipped. This also flags imports that only work through some other
   dependency's dependencies, which an isolated install cannot see.
2. **Isolated** (minutes): a fresh ``python -m venv`` per package in a temporary folder; the
   build tools and then, editable and constrained by ``requirements.lock``, the package with its
   ``test`` extra and the ``shipyard-*`` packages it declares (transitively). Then
   ``python -m pytest packages/<pkg>/tests`` from an empty folder, so no other package's source
   is importable.

Usage::

    .venv/bin/python tools/test_isolated.py                  # every package under packages/
    .venv/bin/python tools/test_isolated.py core registry    # some (names with or without shipyard-)
    .venv/bin/python tools/test_isolated.py --light          # only the packages without torch
    .venv/bin/python tools/test_isolated.py --static-only    # only the import check
    .venv/bin/python tools/test_isolated.py engine -- -m "not slow"   # extra pytest arguments

Exits 0 when everything passed, 1 when a package failed (static check, install or tests), 2 on
a usage mistake. Prints a summary table: package, what was installed, result, seconds.
"""

from __future__ import annotations

import argparse
import ast
import json
import os
import re
import shutil
import subprocess
import sys
import tempfile
import time
import tomllib
from dataclasses import asdict, dataclass, field
from pathlib import Path

from shipyard.core.errors import ConfigError, did_you_mean

REPO = Path(__file__).resolve().parents[1]
LOCK = REPO / "requirements.lock"
BUILD_TOOLS = ("setuptools", "wheel")
# A package whose install includes one of these is "heavy" (skipped by --light).
HEAVY = frozenset({"torch"})
INSTALL_TIMEOUT = 1800.0
TEST_TIMEOUT = 3600.0
QUIET_ENV = {
    "KEDRO_DISABLE_TELEMETRY": "true",
    "DO_NOT_TRACK": "1",
    "DVC_NO_ANALYTICS": "1",
    "BENTOML_DO_NOT_TRACK": "True",
    "PIP_DISABLE_PIP_VERSION_CHECK": "1",
    "PIP_NO_INPUT": "1",
}


# -- the packages and what they declare ---------------------------------------------------------


def canonical(name: str) -> str:
    """PEP 503 normalised distribution name."""
    return re.sub(r"[-_.]+", "-", name).lower()


def requirement_name(requirement: str) -> str:
    from packaging.requirements import Requirement

    return canonical(Requirement(requirement).name)


@dataclass(frozen=True)
class Package:
    name: str  # canonical distribution name
    folder: Path
    requires: tuple[str, ...]  # runtime requirement strings
    test: tuple[str, ...]  # the `test` extra

    @property
    def short(self) -> str:
        return self.name.removeprefix("shipyard-")


def discover(root: Path = REPO) -> dict[str, Package]:
    """Every package under ``packages/``, by canonical distribution name."""
    found = {}
    for pyproject in sorted((root / "packages").glob("*/pyproject.toml")):
        project = tomllib.loads(pyproject.read_text())["project"]
        extras = project.get("optional-dependencies", {})
        package = Package(
            canonical(project["name"]),
            pyproject.parent,
            tuple(project.get("dependencies", [])),
            tuple(extras.get("test", [])),
        )
        found[package.name] = package
    return found


def select(names: list[str], packages: dict[str, Package]) -> list[Package]:
    """The packages named on the command line (``core``, ``shipyard-core`` or a folder)."""
    chosen = []
    for raw in names:
        name = canonical(Path(raw).name)
        package = packages.get(name) or packages.get(f"shipyard-{name}")
        if package is None:
            raise ConfigError(
                f"no package {raw!r} under packages/{did_you_mean(name, [p.short for p in packages.values()])}",
                key="package",
                value=raw,
                fix="name one of: " + ", ".join(p.short for p in packages.values()),
            )
        chosen.append(package)
    return chosen


def local_closure(package: Package, packages: dict[str, Package]) -> list[Package]:
    """The package and every package of this repository it needs: its runtime dependencies
    (transitively) and its test extra's. pip must get each as ``-e``, or it would look for a
    ``shipyard-*`` distribution on the index."""
    seen: dict[str, Package] = {}
    todo = [requirement_name(r) for r in (*package.requires, *package.test)]
    seen[package.name] = package
    while todo:
        name = todo.pop()
        if name in seen or name not in packages:
            continue
        seen[name] = packages[name]
        todo.extend(requirement_name(r) for r in packages[name].requires)
    return [seen[package.name], *sorted((p for n, p in seen.items() if n != package.name), key=lambda p: p.name)]


def is_heavy(package: Package, packages: dict[str, Package]) -> bool:
    """Whether installing ``package`` pulls in torch (directly or through a local package)."""
    names = {requirement_name(r) for p in local_closure(package, packages) for r in p.requires}
    names |= {requirement_name(r) for r in package.test}
    return bool(names & HEAVY)


# -- static import check ------------------------------------------------------------------------


@dataclass
class Imports:
    required: dict[str, set[str]] = field(default_factory=dict)  # top-level module -> files
    optional: set[str] = field(default_factory=set)


def _handles_import_error(node: ast.Try) -> bool:
    for handler in node.handlers:
        names = [handler.type] if not isinstance(handler.type, ast.Tuple) else handler.type.elts
        if any(isinstance(n, ast.Name) and n.id in ("ImportError", "ModuleNotFoundError") for n in names):
            return True
    return False


def _is_type_checking(node: ast.If) -> bool:
    test = node.test
    return (isinstance(test, ast.Name) and test.id == "TYPE_CHECKING") or (
        isinstance(test, ast.Attribute) and test.attr == "TYPE_CHECKING"
    )


def _module_key(module: str) -> str:
    """``shipyard.core.errors`` -> ``shipyard.core`` (one distribution per layer); others -> top level."""
    parts = module.split(".")
    return ".".join(parts[:2]) if parts[0] == "shipyard" and len(parts) > 1 else parts[0]


def scan_imports(folder: Path) -> Imports:
    """Absolute imports in every ``*.py`` under ``folder``, split into required and optional."""
    found = Imports()

    def visit(node: ast.AST, optional: bool, path: Path) -> None:
        if isinstance(node, ast.Try) and _handles_import_error(node):
            for child in node.body:
                visit(child, True, path)
            for part in (*node.handlers, *node.orelse, *node.finalbody):
                visit(part, optional, path)
            return
        if isinstance(node, ast.If) and _is_type_checking(node):
            for child in node.body:
                visit(child, True, path)
            for child in node.orelse:
                visit(child, optional, path)
            return
        modules: list[str] = []
        if isinstance(node, ast.Import):
            modules = [alias.name for alias in node.names]
        elif isinstance(node, ast.ImportFrom) and node.level == 0 and node.module:
            modules = [node.module]
        for module in modules:
            key = _module_key(module)
            if optional:
                found.optional.add(key)
            else:
                found.required.setdefault(key, set()).add(path.name)
        for child in ast.iter_child_nodes(node):
            visit(child, optional, path)

    for path in sorted(folder.rglob("*.py")):
        visit(ast.parse(path.read_text(), str(path)), False, path)
    return found


def module_owners(packages: dict[str, Package]) -> dict[str, set[str]]:
    """Top-level module (``shipyard.<layer>`` for the framework) -> distributions providing it,
    from this repository's packages and the distributions installed in this interpreter."""
    from importlib.metadata import packages_distributions

    owners = {m: {canonical(d) for d in dists} for m, dists in packages_distributions().items()}
    for package in packages.values():
        for child in (package.folder / "src").iterdir():
            if child.name == "shipyard" and child.is_dir():
                for layer in child.iterdir():
                    if layer.is_dir() and not layer.name.startswith(("_", ".")):
                        owners.setdefault(f"shipyard.{layer.name}", set()).add(package.name)
            elif child.is_dir() and not child.name.startswith((".", "_")) and not child.name.endswith(".egg-info"):
                owners.setdefault(child.name, set()).add(package.name)
    owners.pop("shipyard", None)
    return owners


def declared(requirements: tuple[str, ...]) -> set[str]:
    """Distributions a requirement list brings in on purpose: each one named, and the
    requirements of any extra it asks for (``dask[distributed]`` declares ``distributed``)."""
    from importlib.metadata import PackageNotFoundError, requires

    from packaging.requirements import Requirement

    names: set[str] = set()
    for text in requirements:
        req = Requirement(text)
        names.add(canonical(req.name))
        for extra in req.extras:
            try:
                inner = requires(req.name) or []
            except PackageNotFoundError:
                continue
            for line in inner:
                sub = Requirement(line)
                if sub.marker is not None and sub.marker.evaluate({"extra": extra}):
                    names.add(canonical(sub.name))
    return names


def local_modules(folder: Path) -> set[str]:
    """Modules a test folder imports from itself (``conftest``, helpers beside the tests)."""
    return {p.stem for p in folder.rglob("*.py")} | {p.name for p in folder.iterdir() if p.is_dir()}


def static_check(package: Package, owners: dict[str, set[str]]) -> list[str]:
    """One line per import of ``package`` that its own declarations do not cover."""
    runtime = declared(package.requires) | {package.name}
    problems = []
    for part, allowed in (("src", runtime), ("tests", runtime | declared(package.test))):
        folder = package.folder / part
        if not folder.is_dir():
            continue
        ignore = local_modules(folder) if part == "tests" else set()
        for module, files in sorted(scan_imports(folder).required.items()):
            top = module.split(".")[0]
            if top in sys.stdlib_module_names or top == "__future__" or module in ignore:
                continue
            providers = owners.get(module, set())
            if providers & allowed:
                continue
            hint = " or ".join(sorted(providers)) if providers else "not installed here"
            problems.append(f"{part}/ imports {module} ({hint}), not declared [{', '.join(sorted(files)[:3])}]")
    return problems


# -- isolated environments ----------------------------------------------------------------------


@dataclass
class Result:
    package: str
    installed: list[str]
    static: list[str] = field(default_factory=list)
    outcome: str = "-"  # pytest's summary line, or what failed
    passed: bool = False
    install_seconds: float = 0.0
    test_seconds: float = 0.0
    total_seconds: float = 0.0
    unlocked: list[str] = field(default_factory=list)
    log: str = ""

    def cells(self) -> list[str]:
        status = "PASS" if self.passed else "FAIL"
        return [
            self.package,
            ", ".join(self.installed),
            status,
            self.outcome,
            f"{self.install_seconds:.0f}",
            f"{self.test_seconds:.0f}",
            f"{self.total_seconds:.0f}",
        ]


def clean_env(venv: Path | None) -> dict[str, str]:
    """The environment for commands in an isolated venv: nothing of ours leaks in."""
    env = {k: v for k, v in os.environ.items() if k not in ("PYTHONPATH", "SHIPYARD_ROOT", "SHIPYARD_OVERRIDES")}
    env.pop("VIRTUAL_ENV", None)
    env.update(QUIET_ENV)
    # The bin folder of the venv this tool runs from must not be on PATH: `dvc`, `shipyard` or
    # `bentoml` found there would run with every package installed.
    ours = str(Path(sys.executable).parent)
    path = [p for p in env.get("PATH", "").split(os.pathsep) if p and Path(p) != Path(ours)]
    if venv is not None:
        env["VIRTUAL_ENV"] = str(venv)
        path.insert(0, str(venv / "bin"))
    env["PATH"] = os.pathsep.join(path)
    return env


def sh(cmd: list[str], cwd: Path, env: dict[str, str], log: Path, timeout: float) -> int:
    """Run ``cmd`` with its output appended to ``log``; its exit code (124 on a timeout)."""
    with log.open("a") as out:
        out.write(f"\n$ {' '.join(cmd)}\n")
        out.flush()
        try:
            return subprocess.run(
                cmd, cwd=cwd, env=env, stdout=out, stderr=subprocess.STDOUT, timeout=timeout
            ).returncode
        except subprocess.TimeoutExpired:
            out.write(f"\n(timed out after {timeout:.0f} s)\n")
            return 124


def base_python() -> str:
    """The interpreter ``.venv`` was made from (``make setup`` uses the same), so every isolated
    venv runs the same Python as the tests do here."""
    return getattr(sys, "_base_executable", sys.executable)


def lock_pins() -> dict[str, str]:
    pins = {}
    for line in LOCK.read_text().splitlines():
        name, sep, version = line.split("#")[0].strip().partition("==")
        if sep:
            pins[canonical(name)] = version.strip()
    return pins


def not_in_lock(python: Path, local: set[str], cwd: Path, env: dict[str, str]) -> list[str]:
    """Installed distributions the lock does not pin at that version (resolved freely by pip)."""
    listing = subprocess.run(
        [str(python), "-m", "pip", "list", "--format=json"], cwd=cwd, env=env, capture_output=True, text=True
    )
    if listing.returncode != 0:
        return [f"(pip list failed: {listing.stderr.strip()[-200:]})"]
    pins = lock_pins()
    loose = []
    for item in json.loads(listing.stdout):
        name = canonical(item["name"])
        if name in local or name == "pip":
            continue
        # The lock pins public versions: torch==2.13.0 is met by the local build 2.13.0+cpu.
        if pins.get(name) != item["version"].split("+")[0]:
            loose.append(f"{name}=={item['version']}")
    return loose


def pytest_ini(folder: Path) -> Path:
    """The root pyproject's pytest settings, less ``testpaths`` (the tests are named here)."""
    options = tomllib.loads((REPO / "pyproject.toml").read_text())["tool"]["pytest"]["ini_options"]
    lines = ["[pytest]"]
    for key, value in options.items():
        if key == "testpaths":
            continue
        if isinstance(value, list):
            lines.append(f"{key} =")
            lines.extend(f"    {item}" for item in value)
        else:
            lines.append(f"{key} = {value}")
    ini = folder / "pytest.ini"
    ini.write_text("\n".join(lines) + "\n")
    return ini


def install(package: Package, closure: list[Package], work: Path, log: Path) -> tuple[Path | None, str]:
    """A fresh venv under ``work`` with ``closure`` installed; its python, or None and why."""
    venv = work / "venv"
    env = clean_env(None)
    if sh([base_python(), "-m", "venv", str(venv)], work, env, log, INSTALL_TIMEOUT):
        return None, "venv creation failed"
    env = clean_env(venv)
    python = venv / "bin" / "python"
    pip = [str(python), "-m", "pip", "install", "--quiet", "--no-compile", "-c", str(LOCK)]
    # Editable installs of these packages build without isolation, so the locked setuptools
    # and wheel must be there first (and the build uses exactly those).
    if sh([*pip, *BUILD_TOOLS], work, env, log, INSTALL_TIMEOUT):
        return None, "installing setuptools/wheel from the lock failed"
    editables = []
    for member in closure:
        extra = "[test]" if member is package and package.test else ""
        editables += ["-e", f"{member.folder}{extra}"]
    if sh([*pip, "--no-build-isolation", *editables], work, env, log, INSTALL_TIMEOUT):
        return None, "pip install failed (see the log)"
    if sh([str(python), "-m", "pip", "check"], work, env, log, INSTALL_TIMEOUT):
        return None, "pip check found broken requirements"
    return python, ""


def run_tests(package: Package, python: Path, work: Path, log: Path, pytest_args: list[str]) -> tuple[int, str]:
    """pytest over the package's tests from an empty folder; exit code and summary line."""
    empty = work / "cwd"
    empty.mkdir()
    cmd = [
        str(python), "-m", "pytest", str(package.folder / "tests"),
        "-c", str(pytest_ini(work)),
        "--rootdir", str(package.folder),
        "--confcutdir", str(package.folder),
        # Its own temporary folder: the shared /tmp/pytest-of-<user> is pruned by every other
        # pytest run on the machine.
        "--basetemp", str(work / "pytest-tmp"),
        "-p", "no:cacheprovider",
        "-q",
        *pytest_args,
    ]  # fmt: skip
    start = log.stat().st_size if log.exists() else 0
    rc = sh(cmd, empty, clean_env(python.parent.parent), log, TEST_TIMEOUT)
    with log.open() as handle:
        handle.seek(start)
        tail = [line.strip() for line in handle.read().splitlines() if line.strip()]
    summary = next((line.strip("= ") for line in reversed(tail) if re.search(r"\d+ (passed|failed|error)", line)), "")
    return rc, summary or (tail[-1] if tail else f"pytest exited {rc}")


def check_package(
    package: Package,
    packages: dict[str, Package],
    static: list[str],
    logs: Path,
    keep: Path | None,
    pytest_args: list[str],
) -> Result:
    closure = local_closure(package, packages)
    result = Result(package.short, [p.short for p in closure] + (["[test]"] if package.test else []), static)
    log = logs / f"{package.name}.log"
    log.write_text("")
    work = Path(tempfile.mkdtemp(prefix=f"isolated-{package.short}-", dir=keep))
    began = time.perf_counter()
    try:
        start = time.perf_counter()
        python, why = install(package, closure, work, log)
        result.install_seconds = time.perf_counter() - start
        if python is None:
            result.outcome = why
            return result
        result.unlocked = not_in_lock(
            python, {p.name for p in packages.values()}, work, clean_env(python.parent.parent)
        )
        start = time.perf_counter()
        rc, result.outcome = run_tests(package, python, work, log, pytest_args)
        result.test_seconds = time.perf_counter() - start
        result.passed = rc == 0 and not static
        return result
    finally:
        result.log = str(log)
        if keep is None:
            shutil.rmtree(work, ignore_errors=True)
        result.total_seconds = time.perf_counter() - began


# -- report -------------------------------------------------------------------------------------


def table(results: list[Result]) -> str:
    head = ["package", "installed (editable, + test extra)", "result", "pytest", "install s", "test s", "total s"]
    rows = [head, *[r.cells() for r in results]]
    widths = [max(len(row[i]) for row in rows) for i in range(len(head))]
    lines = ["  ".join(c.ljust(w) for c, w in zip(row, widths, strict=True)).rstrip() for row in rows]
    return "\n".join([lines[0], "  ".join("-" * w for w in widths), *lines[1:]])


def details(results: list[Result]) -> list[str]:
    lines = []
    for r in results:
        for problem in r.static:
            lines.append(f"{r.package}: {problem}")
        if r.unlocked:
            lines.append(f"{r.package}: installed but not pinned by requirements.lock: {', '.join(r.unlocked)}")
        if not r.passed and r.log:
            lines.append(f"{r.package}: log {r.log}")
    return lines


def parse_args(argv: list[str] | None) -> argparse.Namespace:
    argv = list(sys.argv[1:] if argv is None else argv)
    # Everything after `--` goes to pytest untouched (argparse's REMAINDER would also swallow
    # this tool's own options when they follow the package names).
    split = argv.index("--") if "--" in argv else len(argv)
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("packages", nargs="*", help="packages to check (default: every one under packages/)")
    parser.add_argument("--light", action="store_true", help="only the packages whose install has no torch")
    parser.add_argument("--static-only", action="store_true", help="only the static import check (seconds)")
    parser.add_argument("--keep", type=Path, help="build the venvs under this folder and keep them")
    parser.add_argument("--logs", type=Path, help="folder for one log per package (default: a temporary one)")
    parser.add_argument("--json", type=Path, help="also write the results as JSON here")
    args = parser.parse_args(argv[:split])
    args.pytest_args = argv[split + 1 :]
    return args


def main(argv: list[str] | None = None) -> int:
    args = parse_args(argv)
    packages = discover()
    try:
        chosen = select(args.packages, packages) if args.packages else list(packages.values())
    except ConfigError as exc:
        print(exc.render(), file=sys.stderr)
        return exc.exit_code
    if args.light:
        skipped = [p.short for p in chosen if is_heavy(p, packages)]
        chosen = [p for p in chosen if not is_heavy(p, packages)]
        print(f"--light: skipping {', '.join(skipped) or 'nothing'} (torch)", file=sys.stderr)

    owners = module_owners(packages)
    static = {p.name: static_check(p, owners) for p in chosen}
    if args.static_only:
        problems = [f"{p.short}: {line}" for p in chosen for line in static[p.name]]
        print("\n".join(problems) or f"static import check: {len(chosen)} packages declare what they import")
        return 1 if problems else 0

    logs = args.logs or Path(tempfile.mkdtemp(prefix="isolated-logs-"))
    logs.mkdir(parents=True, exist_ok=True)
    if args.keep:
        args.keep.mkdir(parents=True, exist_ok=True)
    results = []
    for package in chosen:
        print(f"{package.short}: fresh venv, installing and testing ...", file=sys.stderr, flush=True)
        result = check_package(package, packages, static[package.name], logs, args.keep, args.pytest_args)
        print(
            f"  {'PASS' if result.passed else 'FAIL'}: {result.outcome} (install {result.install_seconds:.0f} s, "
            f"tests {result.test_seconds:.0f} s)",
            file=sys.stderr,
            flush=True,
        )
        results.append(result)

    print()
    print(table(results))
    extra = details(results)
    if extra:
        print()
        print("\n".join(extra))
    if args.json:
        from shipyard.core.atomic import write_json

        write_json(args.json, [asdict(r) for r in results])
    failed = [r.package for r in results if not r.passed]
    print()
    print(f"FAILED: {', '.join(failed)}" if failed else f"all {len(results)} packages pass in isolation")
    return 1 if failed else 0


if __name__ == "__main__":
    sys.exit(main())
