"""Dependencies point one way: ``core`` depends on nothing above it, nothing below
``experiments`` imports it, and the experiment commands stay thin."""

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
            # from lokirl import experiments
            names.update(f"{node.module}.{a.name}" for a in node.names)
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


def _names(name: str, layer: str) -> bool:
    return name == f"lokirl.{layer}" or name.startswith(f"lokirl.{layer}.")


#: Layers below ``experiments``: none may import it, at module level or in a function.
BELOW_EXPERIMENTS = ("core", "traces", "forecast", "sim", "envs", "agents")


def test_no_layer_below_experiments_imports_it():
    root = Path(lokirl.core.__file__).parent.parent
    bad = {
        f"{p.relative_to(root)}: {name}"
        for layer in BELOW_EXPERIMENTS
        for p in (root / layer).rglob("*.py")
        for name in _imports(p)
        if _names(name, "experiments")
    }
    assert not bad, sorted(bad)


def test_only_the_command_line_imports_the_commands():
    """The library layers never reach up into ``lokirl.commands`` (``cli.py`` may)."""
    root = Path(lokirl.core.__file__).parent.parent
    bad = {
        f"{p.relative_to(root)}: {name}"
        for p in root.rglob("*.py")
        if p.parts[len(root.parts)] not in ("commands", "cli.py")
        for name in _imports(p)
        if _names(name, "commands")
    }
    assert not bad, sorted(bad)


#: Commands whose experiments live in ``lokirl.experiments``.
THIN_COMMANDS = ("reproduce.py", "simvslive.py")


def test_experiment_commands_are_thin():
    """They parse, check and print: no classes, no coroutines, no simulator of their own."""
    commands = Path(lokirl.core.__file__).parent.parent / "commands"
    for name in THIN_COMMANDS:
        path = commands / name
        tree = ast.parse(path.read_text())
        kinds = {type(n).__name__ for n in ast.walk(tree)}
        assert not kinds & {"ClassDef", "AsyncFunctionDef"}, name
        assert len(path.read_text().splitlines()) < 300, name
        engines = {
            n for n in _imports(path) if n == "simpy" or _names(n, "sim") or _names(n, "envs")
        }
        assert not engines, (name, sorted(engines))


def test_controllers_come_from_the_entry_point_group():
    from importlib.metadata import entry_points

    names = {ep.name for ep in entry_points(group=ENTRY_POINT_GROUP)}
    assert {"baselines", "agents"} <= names
    assert make_controller("loki").name == "loki"  # registered by lokirl.sim.baselines
    assert make_controller("trigger").name == "trigger"  # registered by lokirl.agents
