"""``core`` depends on nothing above it, not even by name at run time."""

import ast
from pathlib import Path

import lokirl.core
from lokirl.core.controllers import ENTRY_POINT_GROUP, make_controller

UPPER = (
    "sim",
    "envs",
    "agents",
    "runtime",
    "experiments",
    "tracking",
    "commands",
    "traces",
    "forecast",
)


def _imports(path: Path) -> set[str]:
    tree = ast.parse(path.read_text())
    names: set[str] = set()
    for node in ast.walk(tree):
        if isinstance(node, ast.Import):
            names.update(a.name for a in node.names)
        elif isinstance(node, ast.ImportFrom) and node.module:
            names.add(node.module)
        elif isinstance(node, ast.Constant) and isinstance(node.value, str):
            # importlib.import_module("lokirl.sim") and friends
            if node.value.startswith("lokirl.") and " " not in node.value:
                names.add(node.value)
    return names


def test_core_imports_no_upper_layer():
    core = Path(lokirl.core.__file__).parent
    bad = {
        f"{p.name}: {name}"
        for p in core.glob("*.py")
        for name in _imports(p)
        if any(name == f"lokirl.{u}" or name.startswith(f"lokirl.{u}.") for u in UPPER)
    }
    assert not bad, sorted(bad)


def test_controllers_come_from_the_entry_point_group():
    from importlib.metadata import entry_points

    names = {ep.name for ep in entry_points(group=ENTRY_POINT_GROUP)}
    assert {"baselines", "agents"} <= names
    assert make_controller("loki").name == "loki"  # registered by lokirl.sim.baselines
    assert make_controller("trigger").name == "trigger"  # registered by lokirl.agents
