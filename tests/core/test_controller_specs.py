"""Controller specs: how the registry reads them and how it says what is wrong."""

from __future__ import annotations

from dataclasses import dataclass, field

import pytest

from lokirl.core.controller import PeriodicMILPController
from lokirl.core.controllers import make_controller
from lokirl.core.registry import Registry, _readable
from lokirl.errors import ConfigError


@dataclass
class Toy:
    """A keyword class with one setting of each kind the registry checks."""

    steps: int = 3
    rate: float = 1.0
    fast: bool = False
    label: str = "x"
    name: str = "toy"
    cache: dict = field(default_factory=dict, init=False)

    def __post_init__(self) -> None:
        if self.steps < 1:
            raise ValueError(f"toy: steps must be >= 1, got {self.steps}")

    def decide(self, context: object) -> None:
        """Nothing: a stand-in."""


def _toy_registry() -> Registry[Toy]:
    reg: Registry[Toy] = Registry("controller", required=("decide",))
    reg.register_keywords("toy", Toy, "a toy, e.g. toy(steps=2,rate=0.5)")
    reg.register_pattern(r"toy-(\d+(?:\.\d+)?)x", lambda m: Toy(rate=float(m.group(1))))
    reg.register("plain", lambda **kw: Toy(name="plain"))
    return reg


def _error(reg: Registry, spec: str) -> str:
    with pytest.raises(ConfigError) as err:
        reg.create(spec)
    return str(err.value)


def test_unknown_name_lists_patterns_as_written_never_as_regex():
    with pytest.raises(ConfigError) as err:
        make_controller("nosuch")
    text = str(err.value)
    assert "loki-<N>s-churn" in text and "loki-<N>s," in text
    assert "\\d" not in text and "(?:" not in text
    assert "did you mean" not in text  # nothing is close to "nosuch"
    assert "\n" not in text


@pytest.mark.parametrize(
    ("pattern", "form"),
    [
        (r"loki-(\d+(?:\.\d+)?)s-churn", "loki-<N>s-churn"),
        (r"x-([1-9]\d*)(-cap)?(?:-(f|r)([1-9]\d*))?", "x-<N>[-cap][-{f|r}<N>]"),
        (r"h(?:-g(?P<g>[\d.]+))?", "h[-g<N>]"),
        (r"(a|b)-b([0-9]+(?:\.[0-9]+)?)-tuned", "{a|b}-b<N>-tuned"),
        (r"name\((.*)\)", "name(key=value,...)"),
        (r"x-\w+", ""),  # not readable: the caller falls back to the help's example
    ],
)
def test_patterns_read_as_users_write_them(pattern, form):
    assert _readable(pattern) == form


def test_an_unreadable_pattern_shows_its_example_or_its_literal_start():
    reg: Registry[Toy] = Registry("controller")
    reg.register_pattern(r"odd-\w+", lambda m: Toy(), "odd ones, e.g. odd-abc")
    reg.register_pattern(r"weird-(?=x)\w+", lambda m: Toy())
    reg.register_pattern(r"given-(\d+)", lambda m: Toy(), form="given-<COUNT>")
    assert reg.forms() == ["odd-abc", "weird-...", "given-<COUNT>"]


def test_the_closest_known_name_is_suggested():
    assert "did you mean 'loki'?" in str(pytest.raises(ConfigError, make_controller, "lokii").value)
    reg = _toy_registry()
    assert "did you mean 'plain'?" in _error(reg, "plian")
    # a mistyped keyword name keeps its settings
    assert "did you mean 'toy(steps=2)'?" in _error(reg, "tyo(steps=2)")
    # a pattern's example is shown with the form it belongs to
    reg.register_pattern(r"zeta-(\d+)s", lambda m: Toy(), "every N s, e.g. zeta-5s")
    assert "did you mean 'zeta-<N>s' (e.g. zeta-5s)?" in _error(reg, "zeta-5")


@pytest.mark.parametrize("spec", ["toy(", "toy(steps=2", "toy)steps=2(", "toy(steps=(2)"])
def test_an_unbalanced_parenthesis_is_named_with_the_expected_form(spec):
    text = _error(_toy_registry(), spec)
    assert f"unbalanced parenthesis in {spec!r}" in text
    assert "write toy(key=value,...), e.g. toy(steps=2,rate=0.5)" in text
    assert "unknown" not in text


def test_an_unbalanced_parenthesis_after_an_unknown_name_shows_the_general_form():
    text = str(pytest.raises(ConfigError, make_controller, "nosuch(a=1").value)
    assert "unbalanced parenthesis" in text and "write name(key=value,...), e.g. " in text


@pytest.mark.parametrize(
    ("spec", "needle"),
    [
        ("toy(steps=nan)", "steps: must be a finite whole number, got nan"),
        ("toy(steps=inf)", "steps: must be a finite whole number, got inf"),
        ("toy(steps=2.5)", "steps: must be a finite whole number, got 2.5"),
        ("toy(rate=nan)", "rate: must be a finite number, got nan"),
        ("toy(rate=fast)", "rate: must be a number, got 'fast'"),
        ("toy(rate=none)", "rate: must be a number, got 'none'"),
        ("toy(fast=3)", "fast: must be true or false, got '3'"),
        ("toy(steps=2,steps=3)", "steps: given twice"),
        ("toy(steps=)", "steps: has no value"),
        ("toy(cache=1)", "cache: not a setting of toy"),
    ],
)
def test_bad_settings_are_named_before_any_work(spec, needle):
    text = _error(_toy_registry(), spec)
    assert text.startswith(f"{spec}: ") and needle in text and "Fix: " in text


def test_the_keys_offered_are_the_settable_ones():
    text = _error(_toy_registry(), "toy(cache=1)")
    assert "keys among: steps, rate, fast, label" in text


def test_the_class_message_is_prefixed_once_with_its_name():
    text = _error(_toy_registry(), "toy(steps=0)")
    assert text == (
        "toy(steps=0): toy: steps must be >= 1, got 0. Fix: correct that value, "
        "e.g. toy(steps=2,rate=0.5)"
    )


def test_a_bare_keyword_name_builds_the_defaults():
    reg = _toy_registry()
    bare, empty = reg.create("toy"), reg.create("toy()")
    assert (bare.steps, bare.rate, bare.name) == (3, 1.0, "toy") and empty.steps == 3
    periodic = make_controller("periodic")
    assert isinstance(periodic, PeriodicMILPController) and periodic.name == "periodic"
    assert periodic.period_s == make_controller("periodic()").period_s == 1.0
    # a plain name of the same name wins over the keyword class's defaults
    reg.register("toy", lambda **kw: Toy(steps=9, name="toy"))
    assert reg.create("toy").steps == 9


def test_good_keyword_specs_still_build():
    c = make_controller("periodic(period_s=5,headroom=1.3,churn_weight=1,warm_start=true)")
    assert (c.period_s, c.headroom, c.churn_weight, c.warm_start) == (5, 1.3, 1, True)
    assert make_controller("periodic(churn_weight=none)").churn_weight is None
