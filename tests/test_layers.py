"""Imports go one way: core ← methods ← pipeline ← apps ← cli, and no module imports itself back.

Read from the source with `ast` (every import statement, including those inside functions: an import
hidden in a function body is still a dependency), so the check needs nothing installed and runs in
well under a second.
"""

import ast
from pathlib import Path

import pytest

PACKAGE = Path(__file__).parent.parent / "src" / "leanformer"

# Layers, lowest first; a module belongs to the longest prefix listed. A module may import its own
# layer or lower ones. `leanformer.methods` (the package itself) is only a folder of methods that
# the registry lists; each method folder is the "methods" layer.
LAYERS = {
    "core": [
        "leanformer", "leanformer.errors", "leanformer.paths", "leanformer.config", "leanformer.architectures", "leanformer.shrink",
        "leanformer.data", "leanformer.metrics", "leanformer.measure", "leanformer.pretrained", "leanformer.training",
        "leanformer.translation_teacher", "leanformer.distill", "leanformer.deploy",
        "leanformer.registry", "leanformer.api", "leanformer.recipe", "leanformer.evaluation", "leanformer.methods",
    ],
    "methods": [f"leanformer.methods.{p.name}" for p in sorted((PACKAGE / "methods").iterdir()) if (p / "__init__.py").is_file()],
    "pipeline": ["leanformer.distill.general", "leanformer.teacher", "leanformer.student", "leanformer.model_card"],
    "apps": ["leanformer.benchmark", "leanformer.report", "leanformer.demo"],
    "cli": ["leanformer.cli", "leanformer.__main__"],
}
RANK = {prefix: rank for rank, prefixes in enumerate(LAYERS.values()) for prefix in prefixes}
NAMES = list(LAYERS)


def _module_name(path: Path) -> str:
    parts = list(path.relative_to(PACKAGE.parent).with_suffix("").parts)
    return ".".join(parts[:-1] if parts[-1] == "__init__" else parts)


def _modules() -> dict[str, Path]:
    return {_module_name(p): p for p in PACKAGE.rglob("*.py")}


def _imports(name: str, path: Path, known: set[str]) -> set[str]:
    """The leanformer modules `name` imports (a `from X import y` of a submodule y counts as X.y)."""
    package = name if path.name == "__init__.py" else name.rpartition(".")[0]
    found = set()
    for node in ast.walk(ast.parse(path.read_text())):
        if isinstance(node, ast.Import):
            found.update(a.name for a in node.names if a.name.split(".")[0] == "leanformer")
        elif isinstance(node, ast.ImportFrom):
            if node.level:
                base = package.split(".")
                base = base[: len(base) - node.level + 1]
                source = ".".join(base + ([node.module] if node.module else []))
            else:
                source = node.module or ""
            if source.split(".")[0] != "leanformer":
                continue
            for alias in node.names:
                found.add(f"{source}.{alias.name}" if f"{source}.{alias.name}" in known else source)
    found.discard(name)
    return {m for m in found if m in known}


def _layer(module: str) -> int:
    prefix = max((p for p in RANK if module == p or module.startswith(p + ".")), key=len)
    return RANK[prefix]


GRAPH = {name: _imports(name, path, set(_modules())) for name, path in _modules().items()}


def test_every_module_has_a_layer():
    assert len(GRAPH) > 40
    assert all(_layer(m) >= 0 for m in GRAPH)


@pytest.mark.parametrize("module", sorted(GRAPH))
def test_imports_go_down_the_layers(module):
    upward = [f"{target} ({NAMES[_layer(target)]})" for target in sorted(GRAPH[module]) if _layer(target) > _layer(module)]
    assert not upward, f"{module} ({NAMES[_layer(module)]}) imports a higher layer: {', '.join(upward)}"


def test_no_import_circle():
    state: dict[str, int] = {}  # 1: on the current path, 2: done

    def visit(module: str, path: list[str]) -> None:
        state[module] = 1
        for target in sorted(GRAPH[module]):
            if state.get(target) == 1:
                circle = path[path.index(target):] + [target] if target in path else [module, target]
                raise AssertionError("import circle: " + " -> ".join(circle))
            if target not in state:
                visit(target, path + [target])
        state[module] = 2

    for module in sorted(GRAPH):
        if module not in state:
            visit(module, [module])


def test_the_check_catches_an_upward_import_and_a_circle(tmp_path):
    """The walker itself, on a made-up pair of modules: api importing student is found."""
    fake = tmp_path / "leanformer"
    fake.mkdir()
    (fake / "api.py").write_text("def f():\n    from .student import g\n")
    (fake / "student.py").write_text("from .api import f\n")
    known = {"leanformer.api", "leanformer.student"}
    assert _imports("leanformer.api", fake / "api.py", known) == {"leanformer.student"}
    assert _layer("leanformer.student") > _layer("leanformer.api")
