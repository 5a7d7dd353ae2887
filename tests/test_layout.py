"""The package's layout: dependencies flow one way, and every module is read in one sitting.

Layers, lowest first (README, "Layout"); a module may import its own layer
and those below it, never one above, and nothing may form a cycle:

    0  validation, checkpoints, config       rules, files, defaults
    1  data, noise                           arrays, pipelines, label noise
    2  networks                              the sub-networks
    3  models, baselines, transition         Keras models and what they share
    4  reports                               label issues and pictures of a model
    5  training                              configs to runs
    6  experiments, export                   grids, moons, tuning; serving
"""

import ast
import pathlib

import pytest

PACKAGE = pathlib.Path(__file__).resolve().parent.parent / "tf_causalnl"
LAYERS = {
    "validation": 0, "checkpoints": 0, "config": 0,
    "data": 1, "noise": 1,
    "networks": 2,
    "models": 3, "baselines": 3, "transition": 3,
    "reports": 4,
    "training": 5,
    "experiments": 6, "export": 6,
}
MAX_LINES = 350


def _module_name(path: pathlib.Path) -> str:
    parts = path.relative_to(PACKAGE.parent).with_suffix("").parts
    return ".".join(parts[:-1] if parts[-1] == "__init__" else parts)


MODULES = {_module_name(p): p for p in sorted(PACKAGE.rglob("*.py"))}


def _is_package(name: str) -> bool:
    return MODULES[name].name == "__init__.py"


def _target(module: str, imported: str, name: str | None) -> str | None:
    """The module of the package an import statement loads (None: outside the package)."""
    if not imported.startswith("tf_causalnl"):
        return None
    if name and f"{imported}.{name}" in MODULES:
        return f"{imported}.{name}"
    return imported if imported in MODULES else None


def imports(module: str) -> list[tuple[str, int, bool]]:
    """(imported module, line, at the top level?) for each import of the package."""
    path = MODULES[module]
    tree = ast.parse(path.read_text())
    top = set(map(id, tree.body))
    found = []
    for node in ast.walk(tree):
        if isinstance(node, ast.Import):
            targets = [_target(module, a.name, None) for a in node.names]
        elif isinstance(node, ast.ImportFrom):
            base = node.module or ""
            if node.level:
                parent = module.split(".") if _is_package(module) else module.split(".")[:-1]
                base = ".".join(parent[: len(parent) - node.level + 1] + ([node.module] if node.module else []))
            targets = [_target(module, base, a.name) for a in node.names]
        else:
            continue
        found += [(t, node.lineno, id(node) in top) for t in targets if t]
    return found


def layer(module: str) -> int | None:
    parts = module.split(".")
    return LAYERS.get(parts[1]) if len(parts) > 1 else None


def test_every_module_has_a_layer():
    assert [m for m in MODULES if m != "tf_causalnl" and layer(m) is None] == []


@pytest.mark.parametrize("module", [m for m in MODULES if m != "tf_causalnl"])
def test_imports_run_one_way_at_the_top_of_the_module(module):
    for target, line, at_top in imports(module):
        where = f"{MODULES[module].relative_to(PACKAGE.parent)}:{line} imports {target}"
        assert at_top, f"{where} inside a function: move the code to the layer it belongs to"
        assert target != "tf_causalnl", f"{where}: the package's own __init__, import the module itself"
        assert layer(target) <= layer(module), f"{where}, a higher layer"


def test_no_import_cycle():
    graph = {m: {t for t, _, _ in imports(m)} for m in MODULES}
    state, stack = {}, []

    def visit(m):
        state[m] = "open"
        stack.append(m)
        for t in sorted(graph[m]):
            if state.get(t) == "open":
                cycle = stack[stack.index(t):] + [t]
                pytest.fail("import cycle: " + " -> ".join(cycle))
            if t not in state:
                visit(t)
        stack.pop()
        state[m] = "done"

    for m in sorted(graph):
        if m not in state:
            visit(m)


@pytest.mark.parametrize("module", sorted(MODULES))
def test_a_module_is_short_and_says_what_it_is_for(module):
    text = MODULES[module].read_text()
    assert len(text.splitlines()) <= MAX_LINES, f"{module}: split it by job"
    doc = ast.get_docstring(ast.parse(text))
    assert doc and doc.splitlines()[0].strip(), f"{module}: its first docstring line states its job"


SCRIPTS = sorted((PACKAGE.parent / "scripts").glob("*.py"))


@pytest.mark.parametrize("path", [*MODULES.values(), *SCRIPTS], ids=lambda p: p.stem)
def test_no_module_imports_another_modules_private_name(path):
    """A name with a leading underscore is its module's own: what others need is made public."""
    private = []
    for node in ast.walk(ast.parse(path.read_text())):
        if isinstance(node, ast.ImportFrom) and (node.module or "").startswith("tf_causalnl"):
            private += [f"{node.module}.{a.name}" for a in node.names
                        if a.name.startswith("_") and not a.name.startswith("__")]
        if isinstance(node, ast.Attribute) and isinstance(node.value, ast.Name) and node.attr.startswith("_") \
                and not node.attr.startswith("__") and node.value.id in _imported_modules(path):
            private.append(f"{node.value.id}.{node.attr}")
    assert private == [], f"{path.name} uses private names of other modules: {private}"


def _imported_modules(path) -> set:
    """The local names under which `path` imports tf_causalnl modules."""
    names = set()
    for node in ast.walk(ast.parse(path.read_text())):
        if isinstance(node, ast.ImportFrom) and (node.module or "").startswith("tf_causalnl"):
            names |= {a.asname or a.name for a in node.names
                      if f"{node.module}.{a.name}" in MODULES or a.name in ("tf_causalnl",)}
        if isinstance(node, ast.Import):
            names |= {(a.asname or a.name).split(".")[0] for a in node.names if a.name.startswith("tf_causalnl")}
    return names
