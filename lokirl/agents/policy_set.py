"""One policy per pipeline, served as one controller (``ppo:A.zip+B.zip``).

A version-2 or 3 policy is built for one pipeline (and a range of cluster sizes and swap
modes: its :class:`~lokirl.envs.features.PolicyScope`). A user who serves several
pipelines, or a suite that mixes them, names one policy per pipeline joined by ``+``;
at :meth:`PolicySet.bind` the set picks the member whose scope fits what it serves and
refuses, naming each member's reason, when none fits. Where several fit, a member trained
for fewer swap modes, all of them among every other fitting member's, serves (a policy
trained for the mode it serves in over one trained for that mode among others: the
shipped ``ppo`` set keeps, per pipeline, one for ``overlap`` and ``stop`` and one for
``free`` too); otherwise which would serve is ambiguous and the set is refused.
"""

from __future__ import annotations

from collections.abc import Callable, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from lokirl.agents.adapter import (
    PPOController,
    check_policy_fits,
    features_path,
    load_feature_spec,
)
from lokirl.core.controller import ControlContext, Decision
from lokirl.core.pipeline import Cluster, Pipeline
from lokirl.envs.features import FeatureSpec
from lokirl.errors import ConfigError

#: Joins the model files of a set in a ``ppo:`` spec.
SEPARATOR = "+"


def split_policy_paths(path: str) -> list[str]:
    """The model files a ``ppo:`` spec's path names: one, or several joined by ``+``.

    A path that is itself a file is one model even if its name holds a ``+``.

    Raises:
        ConfigError: an empty member (``a.zip++b.zip``) or the same file twice.

    """
    if SEPARATOR not in path or Path(path).is_file():
        return [path]
    parts = path.split(SEPARATOR)
    if any(not p for p in parts):
        raise ConfigError(
            "--controller",
            f"ppo:{path}",
            "an empty model path in a policy set",
            "join model files with one '+' each: ppo:A/model.zip+B/model.zip",
        )
    if len({str(Path(p).resolve()) for p in parts}) != len(parts):
        raise ConfigError(
            "--controller",
            f"ppo:{path}",
            "the same model file twice in a policy set",
            "name each policy once",
        )
    return parts


def check_one_fits(
    spec: str,
    members: Sequence[tuple[FeatureSpec, str]],
    pipeline: Pipeline,
    cluster: Cluster,
    swap: str | None,
) -> int:
    """The index of the member of a set that serves; refuse none, or several and no narrowest.

    Args:
        spec: The set's controller spec (named in errors).
        members: Each member's feature spec and feature file, in the set's order.
        pipeline: The pipeline to serve.
        cluster: The cluster to serve it on.
        swap: The swap mode (``None``: not checked).

    Raises:
        ConfigError: no member fits (each member's reason named), or several do and
            none was trained for fewer swap modes than every other one that fits.

    """
    fits, refusals = [], []
    for i, (feature_spec, source) in enumerate(members):
        try:
            check_policy_fits(feature_spec, source, pipeline, cluster, swap)
        except ConfigError as exc:
            refusals.append(exc)
        else:
            fits.append(i)
    where = f"{pipeline.name} on {cluster.total} workers" + (f" ({swap})" if swap else "")
    if not fits:
        reasons = "; ".join(f"{e.source}: {e.problem}" for e in refusals)
        raise ConfigError(
            "--controller",
            spec,
            f"no policy of the set fits {where}: {reasons}",
            "add a policy trained for it (`lokirl train` with its env.pipeline) or serve "
            "what one of them was built for",
        )
    if len(fits) > 1:
        narrowest = _narrowest_swaps([members[i][0] for i in fits])
        if narrowest is not None:
            return fits[narrowest]
        raise ConfigError(
            "--controller",
            spec,
            f"{len(fits)} policies of the set fit {where} "
            f"({', '.join(members[i][1] for i in fits)}) and none was trained for fewer "
            "swap modes than the others: which would serve is ambiguous",
            "keep one policy per pipeline (or per cluster range, or one whose swap modes "
            "are a subset of the others') in a set",
        )
    return fits[0]


def _narrowest_swaps(specs: Sequence[FeatureSpec]) -> int | None:
    """The index of the one spec whose swap modes are a strict subset of every other's.

    None when some spec has no scope (version 1) or no spec is narrower than all others.
    """
    scopes = [s.scope for s in specs]
    if any(sc is None for sc in scopes):
        return None
    modes = [set(sc.swaps) for sc in scopes if sc is not None]
    for i, mine in enumerate(modes):
        if all(mine < other for j, other in enumerate(modes) if j != i):
            return i
    return None


def check_set_files(
    spec: str, paths: Sequence[str], pipeline: Pipeline, cluster: Cluster, swap: str | None
) -> None:
    """:func:`check_one_fits` from the members' feature files alone (no model is loaded).

    Raises:
        ConfigError: a feature file is missing, or no member fits, or several do and
            none is narrower.

    """
    members = [(load_feature_spec(p), str(features_path(p))) for p in paths]
    check_one_fits(spec, members, pipeline, cluster, swap)


@dataclass
class PolicySet:
    """Trained policies served as one controller: each episode, the one that fits.

    Attributes:
        members: The policies, in the order of the spec.
        name: Display name (the spec).

    """

    members: tuple[PPOController, ...]
    name: str
    _active: PPOController | None = field(init=False, repr=False, default=None)

    @classmethod
    def load(cls, paths: Sequence[str], name: str) -> PolicySet:
        """Load every member (``ppo:PATH`` each)."""
        return cls(tuple(PPOController(p, name=f"ppo:{p}") for p in paths), name)

    @property
    def active(self) -> PPOController | None:
        """The member chosen by the last :meth:`bind` (``None`` before one)."""
        return self._active

    @property
    def spec(self) -> FeatureSpec | None:
        """The active member's feature spec (``None`` before :meth:`bind`)."""
        return self._active.spec if self._active is not None else None

    @property
    def plan(self) -> Callable[..., Any] | None:
        """The active member's planner hook, if it has one (``None`` otherwise).

        A member whose fallback builds its own plans (``fluid``: plans from its library)
        gets a ``plan`` hook at bind, and hosts (the simulator, the live runtime) build
        the plans of its decisions with it. The set hands the hook on, so that it plans
        as its member alone would; without it the host would solve each decision's
        demand itself and the set would serve other plans than its member.
        """
        return getattr(self._active, "plan", None)

    def bind(self, pipeline: Pipeline, cluster: Cluster, swap: str = "overlap") -> None:
        """Choose the member that fits and bind it (see :meth:`PPOController.bind`).

        Raises:
            ConfigError: no member fits, or several do and none is narrower.

        """
        members = [(m.spec, m.features_file) for m in self.members]
        i = check_one_fits(self.name, members, pipeline, cluster, swap)
        self._active = None
        self.members[i].bind(pipeline, cluster, swap)
        self._active = self.members[i]

    def decide(self, context: ControlContext) -> Decision:
        """The active member's decision.

        Raises:
            ConfigError: the set was never bound (it cannot know which member serves).

        """
        if self._active is None:
            raise ConfigError(
                self.name,
                "bind",
                "a policy set picks its member by what it serves and was not told",
                "bind it first: lokirl.core.binding.bind_controller(controller, pipeline, "
                "cluster, swap)",
            )
        return self._active.decide(context)


def make_policy(path: str) -> PPOController | PolicySet:
    """The controller of a ``ppo:PATH`` spec: one policy, or a set (``A+B``)."""
    paths = split_policy_paths(path)
    if len(paths) == 1:
        return PPOController(path, name=f"ppo:{path}")
    return PolicySet.load(paths, name=f"ppo:{path}")
