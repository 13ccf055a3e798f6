"""Parsing helpers shared by the command modules."""

from __future__ import annotations

import math

from lokirl.errors import ConfigError


def parse_range(
    text: str, option: str, example: str, allow_equal: bool = False
) -> tuple[float, float]:
    """Parse ``A:B`` with ``0 <= A < B`` (or ``A <= B`` when ``allow_equal``).

    Raises:
        ConfigError: naming the option, the text and an example of the fix.

    """
    try:
        a, b = (float(x) for x in text.split(":"))
    except ValueError:
        raise ConfigError(option, text, "expected A:B", f"write e.g. {option} {example}") from None
    bad_order = b < a if allow_equal else b <= a
    if not (math.isfinite(a) and math.isfinite(b)) or bad_order or a < 0:
        need = "0 <= A <= B" if allow_equal else "0 <= A < B"
        raise ConfigError(option, text, f"need {need}", f"write e.g. {option} {example}")
    return a, b
