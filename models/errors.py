"""Errors models raise for the user (no heavy imports: the CLI loads this before torch)."""


class ConfigError(ValueError):
    """A configuration key or value is wrong; the message says how to fix it."""
