"""A small registry per kind of pluggable object, with a ``"module:attr"`` fallback.

Names map to factories. A registry may also hold *prefix* factories that take the
text after ``prefix:`` (``ppo:runs/x/model.zip``) and *pattern* factories matched
by a regular expression (``loki-5s``). Anything else containing ``:`` is imported
as ``package.module:attribute`` and called with no arguments.
"""

from __future__ import annotations

import importlib
import re
from collections.abc import Callable
from typing import Any, Generic, TypeVar

from lokirl.errors import ConfigError

T = TypeVar("T")


class Registry(Generic[T]):
    """Named factories of one kind of object.

    Args:
        kind: What the registry holds, used in error messages (``"controller"``).
        required: Attributes an imported ``module:attr`` object must have
            (e.g. ``("decide",)`` for controllers), checked before it is used.

    """

    def __init__(self, kind: str, required: tuple[str, ...] = ()) -> None:
        self.kind = kind
        self.required = required
        self._names: dict[str, tuple[Callable[..., T], str]] = {}
        self._prefixes: dict[str, Callable[[str], T]] = {}
        self._patterns: list[tuple[re.Pattern[str], Callable[[re.Match[str]], T], str]] = []

    def register(self, name: str, factory: Callable[..., T], help: str = "") -> None:
        """Register ``factory`` under ``name``."""
        self._names[name] = (factory, help)

    def register_prefix(self, prefix: str, factory: Callable[[str], T]) -> None:
        """Register a factory for specs ``prefix:ARGUMENT``."""
        self._prefixes[prefix] = factory

    def register_pattern(
        self, pattern: str, factory: Callable[[re.Match[str]], T], help: str = ""
    ) -> None:
        """Register a factory for specs matching the regular expression ``pattern``."""
        self._patterns.append((re.compile(pattern), factory, help))

    def register_keywords(self, name: str, cls: Callable[..., T], help: str = "") -> None:
        """Register ``name(key=value,...)`` specs building ``cls(key=value, ..., name=spec)``.

        Values are read as numbers where they parse as numbers and as booleans for
        ``true``/``false``; keys must be fields of ``cls`` (a dataclass). Used by
        tuning, whose chosen settings are plain specs such as
        ``periodic(period_s=5,headroom=1.3)``.
        """

        def build(m: re.Match[str]) -> T:
            spec = m.group(0)
            fields = getattr(cls, "__dataclass_fields__", {})
            kwargs: dict[str, Any] = {}
            for item in filter(None, (x.strip() for x in m.group(1).split(","))):
                key, eq, raw = item.partition("=")
                key = key.strip()
                if not eq or key not in fields or key == "name":
                    valid = ", ".join(k for k in fields if not k.startswith("_") and k != "name")
                    raise ConfigError(
                        spec,
                        key or item,
                        f"not a setting of {name}",
                        f"write {name}(key=value,...) with keys among: {valid}",
                    )
                kwargs[key] = _value(raw.strip())
            try:
                return cls(**kwargs, name=spec)
            except (TypeError, ValueError) as exc:
                raise ConfigError(spec, name, str(exc), "check the values") from None

        self.register_pattern(rf"{re.escape(name)}\((.*)\)", build, help)

    def names(self) -> list[str]:
        """Registered plain names."""
        return sorted(self._names)

    def describe(self) -> list[tuple[str, str]]:
        """``(name or pattern, help)`` pairs for ``--help`` texts."""
        out = [(n, h) for n, (_, h) in sorted(self._names.items())]
        out += [(p.pattern, h) for p, _, h in self._patterns]
        out += [(f"{p}:ARG", "") for p in self._prefixes]
        return out

    def create(self, spec: str, **kwargs: Any) -> T:
        """Build the object that ``spec`` names.

        Raises:
            ConfigError: ``spec`` names nothing known and cannot be imported.

        """
        spec = spec.strip()
        try:
            if spec in self._names:
                return self._names[spec][0](**kwargs)
            for pattern, factory, _ in self._patterns:
                m = pattern.fullmatch(spec)
                if m:
                    return factory(m)
        except (TypeError, ValueError) as exc:  # a known name with values it refuses
            raise ConfigError(spec, self.kind, str(exc), "check the values in the spec") from None
        if ":" in spec:
            prefix, _, arg = spec.partition(":")
            if prefix in self._prefixes:
                return self._prefixes[prefix](arg)
            try:
                module = importlib.import_module(prefix)
                obj = getattr(module, arg)
            except (ImportError, AttributeError) as exc:
                raise ConfigError(
                    spec,
                    self.kind,
                    f"cannot import {spec!r} ({exc})",
                    "check the module:attribute path",
                ) from None
            out = obj(**kwargs) if callable(obj) else obj
            missing = [a for a in self.required if not hasattr(out, a)]
            if missing:
                raise ConfigError(
                    spec,
                    self.kind,
                    f"{spec!r} is not a {self.kind} (it has no {', '.join(missing)})",
                    f"name a {self.kind} class or factory as 'package.module:attribute'",
                )
            return out
        known = ", ".join(self.names() + [_example(h, p.pattern) for p, _, h in self._patterns])
        raise ConfigError(
            spec,
            self.kind,
            f"unknown {self.kind} {spec!r}",
            f"use one of: {known}; or a 'package.module:attribute' path",
        )


def _example(help: str, pattern: str) -> str:
    """The example a pattern's help gives (``e.g. loki-5s``), else the pattern itself."""
    m = re.search(r"e\.g\. (\S+)", help)
    return m.group(1).rstrip(",;") if m else pattern


def _value(raw: str) -> Any:
    """A spec value: int, float, bool (``true``/``false``), ``none`` or the string."""
    low = raw.lower()
    if low in ("true", "false"):
        return low == "true"
    if low == "none":
        return None
    for conv in (int, float):
        try:
            return conv(raw)
        except ValueError:
            continue
    return raw
