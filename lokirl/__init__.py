"""lokirl: serve ML inference pipelines under a latency SLO."""

__version__ = "0.1.0"
