"""The package's layers, read from the source: every module's imports (function-local ones included) parsed
with `ast`, then checked against the layer rules and for import cycles.

- A file under models/ imports only the shared model blocks, its own submodule, and the low layers
  (motion, conditioning, checkpoint, errors, emotion, paths, features): never training, evaluate, data,
  pipeline, metrics or another model file.
- models/, features/ and metrics/ never import the jobs and the CLI above them.
- training/ is imported only by the CLI (and by itself).
- No cycle among listenerctl modules, nor among its packages (models/, training/, ... each taken as one
  node, since importing a module runs its package's __init__ too).
"""

from __future__ import annotations

import ast
from pathlib import Path

from helpers import ROOT

PACKAGE = "listenerctl"
MODEL_BLOCKS = {"models.base", "models.layers", "models.diffusion", "models.quantize", "models.windows",
                "models.speaker", "models.listener_range", "models.seeding", "models.learned"}
MODEL_SUBMODULES = {"models.sfms": {"models.sfms_keyframes"}}   # a model's own parts, in their own files
MODEL_MAY_USE = {"motion", "conditioning", "checkpoint", "errors", "emotion", "paths"}  # and features.*
JOBS = {"cli", "cli_common", "cli_options", "cli_study", "pipeline", "batch", "cospeech", "evaluate", "training", "study", "study_analysis",
        "study_collect", "study_design", "study_stats", "doctor", "ray_cluster"}
LOW_LAYERS = ("models", "features", "metrics")


def module_files(root: Path, package: str = PACKAGE) -> dict[str, Path]:
    """Module name relative to ``package`` ('' for the package itself, 'models.lbd', ...) → its file."""
    files = {}
    for path in sorted((root / package).rglob("*.py")):
        parts = path.relative_to(root / package).with_suffix("").parts
        files[".".join(parts[:-1] if parts[-1] == "__init__" else parts)] = path
    return files


def imports_of(name: str, path: Path, modules: set[str], package: str = PACKAGE) -> set[str]:
    """The modules of ``modules`` that ``name`` imports anywhere in its file (top level or inside functions):
    ``from package.a import b`` counts as ``a.b`` when that is a module, else as ``a``."""
    own_package = name if path.name == "__init__.py" else name.rpartition(".")[0]

    def module_of(dotted: str) -> str | None:
        if dotted != package and not dotted.startswith(package + "."):
            return None
        relative = dotted.removeprefix(package).removeprefix(".")
        while relative not in modules and relative:
            relative = relative.rpartition(".")[0]
        return relative if relative in modules else None

    found = set()
    for node in ast.walk(ast.parse(path.read_text(encoding="utf-8"))):
        if isinstance(node, ast.Import):
            found.update(module_of(alias.name) for alias in node.names)
        elif isinstance(node, ast.ImportFrom):
            base = node.module or ""
            if node.level:   # relative: resolve against this module's package
                anchor = [package, *filter(None, own_package.split("."))]
                base = ".".join(anchor[:len(anchor) - node.level + 1] + ([base] if base else []))
            for alias in node.names:
                submodule = module_of(f"{base}.{alias.name}")
                found.add(submodule if submodule == f"{base}.{alias.name}".removeprefix(package + ".")
                          else module_of(base))
    return found - {None, name}


def import_graph(root: Path, package: str = PACKAGE) -> dict[str, set[str]]:
    files = module_files(root, package)
    return {name: imports_of(name, path, set(files), package) for name, path in files.items()}


def top(module: str) -> str:
    return module.partition(".")[0]


def layer_violations(graph: dict[str, set[str]]) -> list[str]:
    """One line per import that breaks the layer rules (module docstring)."""
    problems = []
    for name, targets in sorted(graph.items()):
        for target in sorted(targets):
            if top(name) == "models":
                allowed = (target in MODEL_BLOCKS or target in MODEL_SUBMODULES.get(name, set())
                           or target in MODEL_MAY_USE or top(target) == "features")
                if not allowed:
                    problems.append(f"{name} imports {target}: models use only shared blocks and low layers")
            if top(name) in LOW_LAYERS and top(target) in JOBS:
                problems.append(f"{name} imports {target}: a lower layer imports a job or the CLI")
            if top(target) == "training" and top(name) not in ("training", "cli"):
                problems.append(f"{name} imports {target}: only the CLI starts training")
    return problems


def cycles(graph: dict[str, set[str]]) -> list[set[str]]:
    """The strongly connected components of more than one module (Tarjan)."""
    index: dict[str, int] = {}
    low: dict[str, int] = {}
    stack: list[str] = []
    found: list[set[str]] = []

    def visit(node: str) -> None:
        index[node] = low[node] = len(index)
        stack.append(node)
        for nxt in graph.get(node, ()):
            if nxt not in index:
                visit(nxt)
                low[node] = min(low[node], low[nxt])
            elif nxt in stack:
                low[node] = min(low[node], index[nxt])
        if low[node] == index[node]:
            component = set()
            while True:
                member = stack.pop()
                component.add(member)
                if member == node:
                    break
            if len(component) > 1:
                found.append(component)

    for node in sorted(graph):
        if node not in index:
            visit(node)
    return found


def by_package(graph: dict[str, set[str]]) -> dict[str, set[str]]:
    """``graph`` with every module of a subpackage merged into that subpackage (e.g. models.lbd → models)."""
    merged: dict[str, set[str]] = {}
    for name, targets in graph.items():
        merged.setdefault(top(name), set()).update(top(t) for t in targets if top(t) != top(name))
    return merged


# ---------------------------------------------------------------- the package itself

def test_the_package_keeps_its_layers():
    graph = import_graph(ROOT)
    assert {"models.lbd", "training.lbd", "training.loop", "cli"} <= set(graph)   # it read the real package
    assert layer_violations(graph) == []


def test_the_package_has_no_import_cycle():
    graph = import_graph(ROOT)
    assert cycles(graph) == []
    assert cycles(by_package(graph)) == []


def test_models_train_through_the_registry_not_the_model_files():
    graph = import_graph(ROOT)
    for name in ("lbd", "difflistener", "sfms", "facetok", "diffsheg"):
        assert f"models.{name}" in graph[f"training.{name}"]
    model_or_training = {t for t in graph["cli"] if t.startswith(("models.", "training."))}
    assert model_or_training <= {"training.loop", "models.base"}   # plan builders come from the registry


# ---------------------------------------------------------------- the checker catches violations

def write_package(root: Path, files: dict[str, str]) -> None:
    for relative, text in files.items():
        path = root / PACKAGE / relative
        path.parent.mkdir(parents=True, exist_ok=True)
        path.write_text(text, encoding="utf-8")


def test_the_checker_reports_each_kind_of_violation(tmp_path):
    write_package(tmp_path, {
        "__init__.py": "", "errors.py": "", "evaluate.py": "import listenerctl.models.lbd\n",
        "models/__init__.py": "", "models/base.py": "from listenerctl.errors import X\n",
        "models/lbd.py": "from listenerctl.models.base import Generator\n"
                         "def plan():\n    from listenerctl.training.loop import TrainPlan\n"   # function-local
                         "    from listenerctl.evaluate import score\n",
        "models/sfms.py": "from listenerctl.models import lbd\nfrom . import base\n",
        "features/__init__.py": "", "features/audio.py": "from listenerctl.pipeline import run\n",
        "pipeline.py": "", "training/__init__.py": "", "training/loop.py": "",
    })
    graph = import_graph(tmp_path)
    assert graph["models.sfms"] == {"models.lbd", "models.base"}
    problems = layer_violations(graph)
    assert any(p.startswith("models.lbd imports training.loop") for p in problems)
    assert any(p.startswith("models.lbd imports evaluate") for p in problems)
    assert any(p.startswith("models.sfms imports models.lbd") for p in problems)
    assert any(p.startswith("features.audio imports pipeline") for p in problems)
    assert not any(p.startswith("models.sfms imports models.base") for p in problems)
    assert cycles(graph) == [{"evaluate", "models.lbd"}]
    assert cycles(by_package(graph)) == [{"evaluate", "models"}]
