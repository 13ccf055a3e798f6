"""Command-line subcommands of ``lokirl``; each module has ``register(subparsers)``."""
