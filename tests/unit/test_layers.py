"""The package layering, read from the source: who may import whom, and no import cycles.

Nodes are the sub-packages (kiro, accounts, store, web, protocols) and the top-level modules.
Every import counts, also those inside functions.
"""
from __future__ import annotations

import ast
from pathlib import Path
from typing import Dict, List, Set

import kiroproxy

ROOT = Path(kiroproxy.__file__).parent


def module_name(path: Path) -> str:
    parts = path.relative_to(ROOT.parent).with_suffix("").parts
    return ".".join(parts[:-1] if parts[-1] == "__init__" else parts)


def imported_modules(path: Path) -> Set[str]:
    """Absolute names of every kiroproxy module `path` imports (`from . import x` gives pkg.x)."""
    name = module_name(path)
    package = name if path.name == "__init__.py" else name.rpartition(".")[0]
    found: Set[str] = set()
    for node in ast.walk(ast.parse(path.read_text(encoding="utf-8"))):
        if isinstance(node, ast.Import):
            found.update(alias.name for alias in node.names)
        elif isinstance(node, ast.ImportFrom):
            if node.level:
                base = package.split(".")
                base = base[:len(base) - node.level + 1]
                source = ".".join(base + ([node.module] if node.module else []))
            else:
                source = node.module or ""
            found.add(source)
            found.update(f"{source}.{alias.name}" for alias in node.names)
    return {module for module in found if module.split(".")[0] == "kiroproxy" and exists(module)}


def exists(module: str) -> bool:
    path = ROOT.parent.joinpath(*module.split("."))
    return path.with_suffix(".py").is_file() or (path / "__init__.py").is_file()


def modules() -> Dict[str, Set[str]]:
    return {module_name(path): imported_modules(path) for path in sorted(ROOT.rglob("*.py"))}


def layer(module: str) -> str:
    """The graph node of a module: its sub-package, or the module itself at the top level."""
    parts = module.split(".")
    return parts[1] if len(parts) > 1 else "kiroproxy"


def layer_graph() -> Dict[str, Set[str]]:
    graph: Dict[str, Set[str]] = {}
    for module, imports in modules().items():
        edges = graph.setdefault(layer(module), set())
        edges.update(layer(target) for target in imports if layer(target) not in (layer(module), "kiroproxy"))
    return graph


def cycles(graph: Dict[str, Set[str]]) -> List[List[str]]:
    found: List[List[str]] = []

    def visit(node: str, path: List[str]) -> None:
        for target in sorted(graph.get(node, ())):
            if target in path:
                found.append(path[path.index(target):] + [target])
            elif len(path) < len(graph):
                visit(target, path + [target])

    for start in sorted(graph):
        visit(start, [start])
    return found


def test_the_graph_sees_real_imports():
    graph = layer_graph()
    assert "kiro" in graph["relay"] and "accounts" in graph["relay"]
    assert "kiroproxy.kiro.eventstream" in modules()["kiroproxy.kiro.stream"]
    assert cycles({"a": {"b"}, "b": {"a"}, "c": set()}) == [["a", "b", "a"], ["b", "a", "b"]]


def test_no_import_cycle_between_packages_and_top_level_modules():
    assert cycles(layer_graph()) == []


def test_kiro_is_self_contained():
    graph = layer_graph()
    assert graph["kiro"] & {"accounts", "store", "web", "protocols", "relay", "services", "app"} == set()


def test_config_does_not_know_the_account_store():
    assert "accounts" not in layer_graph()["config"]


def test_only_kiro_and_the_composition_root_touch_the_wire_format_and_transport():
    private = {"kiroproxy.kiro.eventstream", "kiroproxy.kiro.transport", "kiroproxy.kiro.events"}
    # Composition roots: they build Kiro's client and sessions from the transport parts.
    allowed = {"kiroproxy.services", "kiroproxy.cli.doctor"}
    offenders = {module: sorted(imports & private) for module, imports in modules().items()
                 if imports & private and layer(module) != "kiro" and module not in allowed}
    assert offenders == {}
