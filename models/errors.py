"""Errors models raise for the user (no heavy imports: the CLI loads this before torch)."""


class ConfigError(ValueError):
    """A configuration key or value is wrong; the message says how to fix it."""


class TrainingDiverged(RuntimeError):
    """A training loss became NaN or infinite: the run's weights are garbage, so it fails (a
    recorded failure, never a result) instead of ranking with them."""
