"""A small registry per kind of pluggable object, with a ``"module:attr"`` fallback.

Names map to factories. A registry may also hold *prefix* factories that take the
text after ``prefix:`` (``ppo:runs/x/model.zip``), *pattern* factories matched by a
regular expression (``loki-5s``) and *keyword* classes built from
``name(key=value,...)`` specs (``fluid(horizon=3)``; the bare ``name`` builds the
defaults). Anything else containing ``:`` is imported as ``package.module:attribute``
and called with no arguments.

Errors name the spec and what to write instead: the known names and patterns as a
user writes them (``loki-<N>s-churn``, never the regular expression), the closest
known name when there is one, an unbalanced parenthesis, a setting that is not a
finite number.
"""

from __future__ import annotations

import difflib
import importlib
import math
import re
from collections.abc import Callable
from typing import Any, Generic, TypeVar

from lokirl.errors import ConfigError

T = TypeVar("T")

#: How a ``name(key=value,...)`` spec is written, in errors and listings.
KEYWORD_FORM = "(key=value,...)"


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
        #: How each pattern is written for users (``loki-<N>s``), by its regex text.
        self._forms: dict[str, str] = {}
        #: Keyword classes (``name(key=value,...)``): name -> (class, help).
        self._keywords: dict[str, tuple[Callable[..., T], str]] = {}

    def register(self, name: str, factory: Callable[..., T], help: str = "") -> None:
        """Register ``factory`` under ``name``."""
        self._names[name] = (factory, help)

    def register_prefix(self, prefix: str, factory: Callable[[str], T]) -> None:
        """Register a factory for specs ``prefix:ARGUMENT``."""
        self._prefixes[prefix] = factory

    def register_pattern(
        self,
        pattern: str,
        factory: Callable[[re.Match[str]], T],
        help: str = "",
        form: str = "",
    ) -> None:
        """Register a factory for specs matching the regular expression ``pattern``.

        Args:
            pattern: The regular expression a whole spec must match.
            factory: Builds the object from the match.
            help: One line for listings; its ``e.g. SPEC`` is the example errors give.
            form: How a user writes such a spec (``loki-<N>s``) in listings and
                errors; by default read off ``pattern`` (numbers become ``<N>``,
                optional parts ``[...]``), else the help's example.

        """
        self._patterns.append((re.compile(pattern), factory, help))
        if form:
            self._forms[pattern] = form

    def register_keywords(self, name: str, cls: Callable[..., T], help: str = "") -> None:
        """Register ``name(key=value,...)`` specs building ``cls(key=value, ..., name=spec)``.

        Values are read as numbers where they parse as numbers and as booleans for
        ``true``/``false``; keys must be fields of ``cls`` (a dataclass); a number
        must be finite where the field is a whole number, and never NaN. The bare
        ``name`` (no parentheses) builds ``cls``'s defaults, as ``name()`` does,
        unless ``name`` is also registered as a plain name. Used by tuning, whose
        chosen settings are plain specs such as ``periodic(period_s=5,headroom=1.3)``.
        """
        self._keywords[name] = (cls, help)

        def build(m: re.Match[str]) -> T:
            return self._build_keywords(name, m.group(0), m.group(1))

        self.register_pattern(rf"{re.escape(name)}\((.*)\)", build, help, name + KEYWORD_FORM)

    def _build_keywords(self, name: str, spec: str, body: str) -> T:
        """Build the keyword class ``name`` from the ``key=value,...`` text ``body``.

        Raises:
            ConfigError: a key that is not a setting, given twice or without a value;
                a value the class refuses; NaN, or a whole-number setting that is not
                a finite whole number.

        """
        cls, help = self._keywords[name]
        fields = getattr(cls, "__dataclass_fields__", {})
        settable = [
            k for k, f in fields.items() if not k.startswith("_") and k != "name" and f.init
        ]
        example = _example(help) or f"{name}()"
        kwargs: dict[str, Any] = {}
        for item in filter(None, (x.strip() for x in body.split(","))):
            key, eq, raw = item.partition("=")
            key = key.strip()
            if not eq or key not in settable:
                raise ConfigError(
                    spec,
                    key or item,
                    f"not a setting of {name}",
                    f"write {name}(key=value,...) with keys among: {', '.join(settable)}",
                )
            if key in kwargs:
                raise ConfigError(spec, key, "given twice", f"give {key} once")
            if not raw.strip():
                raise ConfigError(spec, key, "has no value", f"write {key}=VALUE, e.g. {example}")
            value = _value(raw.strip())
            wants = _type_text(fields[key].type)
            absent = value is None and "None" not in wants
            if (isinstance(value, str) or absent) and _NUMERIC.fullmatch(wants):
                raise ConfigError(
                    spec,
                    key,
                    f"must be a number, got {raw.strip()!r}",
                    f"write {key}=N, e.g. {example}",
                )
            if not isinstance(value, bool) and wants == "bool":
                raise ConfigError(
                    spec, key, f"must be true or false, got {raw.strip()!r}", f"write {key}=true"
                )
            kwargs[key] = value
        try:
            out = cls(**kwargs, name=spec)
        except (TypeError, ValueError, ArithmeticError) as exc:
            # the class's own message often starts with its name: say it once
            problem = str(exc).removeprefix(f"{name}: ")
            raise ConfigError(spec, name, problem, f"correct that value, e.g. {example}") from None
        for key, value in kwargs.items():  # what the class's own checks let through
            if not isinstance(value, float) or (math.isfinite(value) and value.is_integer()):
                continue
            if _whole(fields[key].type):
                raise ConfigError(
                    spec,
                    key,
                    f"must be a finite whole number, got {value:g}",
                    f"write {key}=N, e.g. {example}",
                )
            if math.isnan(value):
                raise ConfigError(
                    spec, key, "must be a finite number, got nan", f"write a number, e.g. {example}"
                )
        return out

    def names(self) -> list[str]:
        """Registered plain names."""
        return sorted(self._names)

    def forms(self) -> list[str]:
        """The registered patterns and prefixes as users write them (``loki-<N>s``)."""
        out = [self._form(p, h) for p, _, h in self._patterns]
        return out + [f"{p}:<ARG>" for p in self._prefixes]

    def describe(self) -> list[tuple[str, str]]:
        """``(name or form, help)`` pairs for ``--help`` texts."""
        out = [(n, h) for n, (_, h) in sorted(self._names.items())]
        out += [(self._form(p, h), h) for p, _, h in self._patterns]
        out += [(f"{p}:<ARG>", "") for p in self._prefixes]
        return out

    def _form(self, pattern: re.Pattern[str], help: str) -> str:
        """How a user writes a spec of ``pattern``: its form, else read off the regex."""
        return (
            self._forms.get(pattern.pattern)
            or _readable(pattern.pattern)
            or _example(help)
            or _literal_prefix(pattern.pattern) + "..."
        )

    def create(self, spec: str, **kwargs: Any) -> T:
        """Build the object that ``spec`` names.

        Raises:
            ConfigError: ``spec`` names nothing known and cannot be imported, has an
                unbalanced parenthesis, or holds values its object refuses.

        """
        spec = spec.strip()
        try:
            if spec in self._names:
                return self._names[spec][0](**kwargs)
            if not _balanced(spec):
                raise self._unbalanced(spec)
            for pattern, factory, _ in self._patterns:
                m = pattern.fullmatch(spec)
                if m:
                    return factory(m)
            if spec in self._keywords:  # the bare name of a keyword class: its defaults
                return self._build_keywords(spec, spec, "")
        except (TypeError, ValueError, ArithmeticError) as exc:  # values it refuses
            example = self._example_of(spec)
            raise ConfigError(
                spec,
                self.kind,
                str(exc),
                f"correct that value, e.g. {example}" if example else "check the values",
            ) from None
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
        known = ", ".join(self.names() + self.forms())
        close = self._closest(spec)
        raise ConfigError(
            spec,
            self.kind,
            f"unknown {self.kind} {spec!r}",
            (f"did you mean {close}? Otherwise use" if close else "use")
            + f" one of: {known}; or a 'package.module:attribute' path",
        )

    def _unbalanced(self, spec: str) -> ConfigError:
        """The error for a spec whose parentheses do not pair up."""
        head = re.split(r"[()]", spec, maxsplit=1)[0].strip()
        if head in self._keywords:
            form = head + KEYWORD_FORM
            example = _example(self._keywords[head][1])
        else:
            form = "name" + KEYWORD_FORM
            example = next((e for _, h in self._keywords.values() if (e := _example(h))), "")
        return ConfigError(
            spec,
            self.kind,
            f"unbalanced parenthesis in {spec!r}",
            f"write {form}" + (f", e.g. {example}" if example else ""),
        )

    def _example_of(self, spec: str) -> str:
        """The help's example of the pattern or keyword class ``spec`` belongs to."""
        head = spec.partition("(")[0]
        if head in self._keywords:
            return _example(self._keywords[head][1])
        for pattern, _, help in self._patterns:
            if pattern.fullmatch(spec):
                return _example(help)
        return ""

    def _closest(self, spec: str) -> str:
        """The known spec closest to a mistyped ``spec`` (quoted), or ``""``."""
        head, paren, rest = spec.partition("(")
        if paren:  # a mistyped keyword name: keep the settings
            hit = difflib.get_close_matches(head.strip(), list(self._keywords), n=1)
            return f"'{hit[0]}({rest}'" if hit else ""
        examples: dict[str, str] = {}  # a pattern's example -> how it is written
        for pattern, _, help in self._patterns:
            example = _example(help)
            if example and example not in examples:
                examples[example] = self._form(pattern, help)
        candidates = [*self._names, *self._keywords, *examples]
        hit = difflib.get_close_matches(spec, candidates, n=1)
        if not hit:
            return ""
        form = examples.get(hit[0], "")
        if form and form != hit[0] and hit[0] not in self._names:
            return f"'{form}' (e.g. {hit[0]})"
        return f"'{hit[0]}'"


def _balanced(spec: str) -> bool:
    """Whether every ``(`` in ``spec`` is closed by a later ``)`` and vice versa."""
    depth = 0
    for ch in spec:
        depth += (ch == "(") - (ch == ")")
        if depth < 0:
            return False
    return depth == 0


#: Field annotations that take numbers only (``float``, ``int | None``...).
_NUMERIC = re.compile(r"(?:int|float)(?:\s*\|\s*(?:int|float|None))*")


def _type_text(annotation: Any) -> str:
    """A dataclass field's annotation as written (``"int | None"``), string or type."""
    if isinstance(annotation, str):
        return annotation.strip()
    return annotation.__name__ if isinstance(annotation, type) else str(annotation)


def _whole(annotation: Any) -> bool:
    """Whether a dataclass field's annotation is a whole number (``int``, ``int | None``)."""
    return re.fullmatch(r"int(\s*\|\s*None)?", _type_text(annotation)) is not None


def _example(help: str) -> str:
    """The example a help text gives (``e.g. loki-5s``), else ``""``."""
    m = re.search(r"e\.g\. (\S+)", help)
    return m.group(1).rstrip(",;") if m else ""


#: Group bodies that read a number: ``\d+``, ``\d+(?:\.\d+)?``, ``[1-9]\d*``, ``[\d.]+``.
_NUMBER_TOKENS = re.compile(r"\\d|\[0-9\]|\[1-9\]|\[\\d\.\]|\\\.|\(\?:|\)|[+*?]")
_NAMED = re.compile(r"\?P<\w+>")


def _readable(pattern: str) -> str:
    r"""A regular expression as a user writes the spec, or ``""`` where it cannot say.

    Numbers become ``<N>``, ``\((.*)\)`` becomes ``(key=value,...)``, an optional
    part ``[...]`` and a choice ``{a|b}``: ``loki-(\d+(?:\.\d+)?)s-churn`` reads
    ``loki-<N>s-churn``.
    """
    try:
        text, end = _read_sequence(pattern, 0)
    except ValueError:
        return ""
    return text if end == len(pattern) else ""


def _read_sequence(pattern: str, i: int) -> tuple[str, int]:
    """Read alternatives from ``pattern[i:]`` up to an unmatched ``)`` (``ValueError``: regex)."""
    parts, cur = [], []
    while i < len(pattern):
        ch = pattern[i]
        if ch == ")":
            break
        if ch == "|":
            parts.append("".join(cur))
            cur, i = [], i + 1
            continue
        if ch == "\\":
            nxt = pattern[i + 1 : i + 2]
            if not nxt or nxt.isalnum():  # \d, \w, \b...: a class, not a character
                raise ValueError(pattern)
            cur.append(nxt)
            i += 2
            continue
        if ch == "(":
            close = _group_end(pattern, i)
            body = pattern[i + 1 : close]
            optional = pattern[close + 1 : close + 2] == "?"
            if pattern[close + 1 : close + 2] in ("*", "+", "{"):
                raise ValueError(pattern)
            named = _NAMED.match(body)
            if body.startswith("?:") or named:
                body = body[named.end() if named else 2 :]
            elif body.startswith("?"):  # a look-around or flag: not readable
                raise ValueError(pattern)
            if body in (".*", ".+"):
                text = KEYWORD_FORM.strip("()")
            elif not _NUMBER_TOKENS.sub("", body) and re.search(r"\\d|\[\d-9\]", body):
                text = "<N>"
            else:
                text, end = _read_sequence(body, 0)
                if end != len(body):
                    raise ValueError(pattern)
            cur.append(f"[{text}]" if optional else text)
            i = close + (2 if optional else 1)
            continue
        if ch in ".*+?[]{}^$":
            raise ValueError(pattern)
        cur.append(ch)
        i += 1
    parts.append("".join(cur))
    return ("{" + "|".join(parts) + "}" if len(parts) > 1 else parts[0]), i


def _group_end(pattern: str, start: int) -> int:
    """Index of the ``)`` closing the group opened at ``pattern[start]``."""
    depth, i, in_class = 0, start, False
    while i < len(pattern):
        ch = pattern[i]
        if ch == "\\":
            i += 2
            continue
        if in_class:
            in_class = ch != "]"
        elif ch == "[":
            in_class = True
        elif ch == "(":
            depth += 1
        elif ch == ")":
            depth -= 1
            if depth == 0:
                return i
        i += 1
    raise ValueError(pattern)


def _literal_prefix(pattern: str) -> str:
    r"""The plain text a pattern starts with (``loki-`` of ``loki-(\d+)s``)."""
    m = re.match(r"(?:[^\\.*+?()\[\]{}|^$]|\\[^\w])*", pattern)
    return (m.group(0) if m else "").replace("\\", "") or "<pattern>"


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
