"""The layout's rules, checked on the code itself: imports run one way, no circles, small modules.

Imports are read by grimp (import-linter's graph library) from the source, lazy imports inside functions
included: a circle through a function-level import is still a circle. The layer contracts themselves are
in pyproject.toml (``[tool.importlinter]``) and checked by ``lint-imports`` below.
"""

from __future__ import annotations

import shutil
import subprocess
import sys
from pathlib import Path

import pytest

grimp = pytest.importorskip("grimp", reason="grimp comes with import-linter, a dev dependency")

ROOT = Path(__file__).resolve().parents[2]
PACKAGES = ("search", "ingest")
# "No module over ~400 lines except data": data files are JSON, so every .py counts.
MAX_MODULE_LINES = 420


def _graph():
    return grimp.build_graph(*PACKAGES, cache_dir=None)


def _cycles(graph) -> list[list[str]]:
    """Strongly connected components of more than one module (Tarjan), each sorted."""
    modules = sorted(graph.modules)
    index: dict[str, int] = {}
    low: dict[str, int] = {}
    stack: list[str] = []
    on_stack: set[str] = set()
    out: list[list[str]] = []
    counter = 0
    sys.setrecursionlimit(max(10_000, sys.getrecursionlimit()))

    def visit(v: str) -> None:
        nonlocal counter
        index[v] = low[v] = counter
        counter += 1
        stack.append(v)
        on_stack.add(v)
        for w in sorted(graph.find_modules_directly_imported_by(v)):
            if w not in index:
                visit(w)
                low[v] = min(low[v], low[w])
            elif w in on_stack:
                low[v] = min(low[v], index[w])
        if low[v] == index[v]:
            comp = []
            while True:
                w = stack.pop()
                on_stack.discard(w)
                comp.append(w)
                if w == v:
                    break
            if len(comp) > 1:
                out.append(sorted(comp))

    for m in modules:
        if m not in index:
            visit(m)
    return out


def test_no_import_circles_not_even_through_lazy_imports() -> None:
    graph = _graph()
    cycles = _cycles(graph)
    detail = []
    for comp in cycles:
        a, b = comp[0], comp[1]
        chain = graph.find_shortest_chain(importer=a, imported=b) or ()
        back = graph.find_shortest_chain(importer=b, imported=a) or ()
        detail.append(f"{' -> '.join(chain)} and back: {' -> '.join(back)}")
    assert not cycles, "import circles:\n" + "\n".join(detail)


def test_the_cycle_finder_finds_a_circle() -> None:
    """The check above can fail: a graph with a circle through a lazy import is reported."""
    graph = _graph()
    graph.add_import(importer="search.schema", imported="search.settings")
    graph.add_import(importer="search.settings", imported="search.schema")
    assert ["search.schema", "search.settings"] in _cycles(graph)


def test_search_never_imports_ingest() -> None:
    graph = _graph()
    bad = [
        (m, i) for m in graph.find_descendants("search") | {"search"}
        for i in graph.find_modules_directly_imported_by(m) if i == "ingest" or i.startswith("ingest.")
    ]
    assert not bad, f"search must not depend on the worker: {bad}"


def test_no_module_over_the_size_limit() -> None:
    big = {}
    for pkg in PACKAGES:
        for path in (ROOT / pkg).rglob("*.py"):
            n = len(path.read_text(encoding="utf-8").splitlines())
            if n > MAX_MODULE_LINES:
                big[str(path.relative_to(ROOT))] = n
    assert not big, f"modules over {MAX_MODULE_LINES} lines (split them along their seams): {big}"


def test_importing_search_loads_no_model_library() -> None:
    """`import search` (what every service does first) must not pay for torch or sentence-transformers."""
    code = ("import sys, search; bad = [m for m in ('torch', 'sentence_transformers', 'transformers', "
            "'openvino', 'onnxruntime') if m in sys.modules]; print(','.join(bad))")
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, cwd=ROOT, check=True)
    assert out.stdout.strip() == "", f"import search imported {out.stdout.strip()}"


def test_layer_contracts_hold() -> None:
    """import-linter's layer contracts of pyproject.toml."""
    exe = shutil.which("lint-imports", path=str(Path(sys.executable).parent)) or shutil.which("lint-imports")
    if exe is None:
        pytest.skip("lint-imports (import-linter, a dev dependency) is not installed")
    proc = subprocess.run([exe, "--no-cache"], capture_output=True, text=True, cwd=ROOT)
    assert proc.returncode == 0, proc.stdout[-4000:] + proc.stderr[-2000:]


# --- dependencies ------------------------------------------------------------------------------------
def _requirement_names(specs: list[str]) -> set[str]:
    import re

    return {re.split(r"[\s<>=!~;\[(]", s.strip(), maxsplit=1)[0].lower().replace("_", "-") for s in specs}


def _pyproject() -> dict:
    try:
        import tomllib
    except ImportError:  # Python 3.10
        import tomli as tomllib  # type: ignore[no-redef]
    return tomllib.loads((ROOT / "pyproject.toml").read_text(encoding="utf-8"))


def _third_party_imports(folder: Path) -> dict[str, str]:
    """Top-level module -> first file importing it (lazy imports inside functions included)."""
    import ast

    own = {"search", "ingest", "benchmarks", "tests"}
    out: dict[str, str] = {}
    for path in sorted(folder.rglob("*.py")):
        for node in ast.walk(ast.parse(path.read_text(encoding="utf-8"))):
            if isinstance(node, ast.Import):
                names = [a.name for a in node.names]
            elif isinstance(node, ast.ImportFrom) and node.level == 0 and node.module:
                names = [node.module]
            else:
                continue
            for name in names:
                top = name.split(".")[0]
                if top not in sys.stdlib_module_names and top not in own and top != "__future__":
                    out.setdefault(top, str(path.relative_to(ROOT)))
    return out


@pytest.mark.parametrize("folders,groups", [
    (("search", "ingest"), "library"),  # the package: its dependencies and extras
    (("tests", "benchmarks"), "all"),  # tests and benchmarks may use the dev extra too
])
def test_every_imported_package_is_declared(folders, groups) -> None:
    """A module imported directly must come from a declared distribution, not from one that happens to be
    installed as another package's dependency (review item 10: httpx, huggingface_hub, tomli were not)."""
    import importlib.metadata as md

    project = _pyproject()["project"]
    extras = dict(project["optional-dependencies"])
    if groups == "library":
        extras.pop("dev")
    declared = _requirement_names(project["dependencies"]) | {n for v in extras.values() for n in _requirement_names(v)}
    dists = md.packages_distributions()
    missing = []
    for folder in folders:
        for module, where in _third_party_imports(ROOT / folder).items():
            names = {d.lower().replace("_", "-") for d in dists.get(module, [])}
            if not names:
                continue  # not installed here (an extra this environment lacks): nothing to map it to
            if not names & declared:
                missing.append(f"{module} ({', '.join(sorted(names))}) in {where}")
    assert not missing, "imported but not declared in pyproject.toml: " + "; ".join(missing)


def test_the_engine_dependency_has_an_upper_bound() -> None:
    """The edge store's files are written by qdrant-edge-py; a 0.x minor release may change them (review item 8)."""
    (spec,) = [s for s in _pyproject()["project"]["dependencies"] if s.startswith("qdrant-edge-py")]
    assert "<" in spec, spec
