"""A tiny CNN whose construction takes a while: makes a live model load slow enough to watch.

Imported by name (``slow_model:slow_cnn``) inside Ray worker actors, which find it
through ``PYTHONPATH`` (see ``tests/runtime/test_runtime.py``).
"""

from __future__ import annotations

import time

from torch import nn

from lokirl.runtime.models import tiny_cnn


def slow_cnn(load_s: float = 1.0, **kwargs: int) -> nn.Module:
    """``tiny_cnn(**kwargs)`` after sleeping ``load_s`` seconds."""
    time.sleep(load_s)
    return tiny_cnn(**kwargs)
