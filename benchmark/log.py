"""The harness's one logger. Levels: DEBUG (details), INFO (run headers, epoch lines), SUMMARY
(one line per finished run: shown even with ``--quiet``), WARNING (skipped or repaired input).

Messages go through ``tqdm.write`` so they never break a progress bar. The command line
configures it (:func:`configure`); a library user configures ``logging`` as usual.
"""

from __future__ import annotations

import logging
import sys

SUMMARY = 25
logging.addLevelName(SUMMARY, "SUMMARY")
logger = logging.getLogger("genrec_bench")


class _TqdmHandler(logging.Handler):
    """Warnings to stderr with a ``warning:`` prefix, the rest to stdout."""

    def emit(self, record: logging.LogRecord) -> None:
        from tqdm.auto import tqdm

        if record.levelno >= logging.WARNING:
            tqdm.write("warning: " + self.format(record), file=sys.stderr)
        else:
            tqdm.write(self.format(record), file=sys.stdout)


def configure(quiet: bool = False, verbose: bool = False) -> None:
    """INFO by default; ``quiet``: summaries and warnings only; ``verbose``: DEBUG too."""
    level = SUMMARY if quiet else (logging.DEBUG if verbose else logging.INFO)
    logger.setLevel(level)
    if not any(isinstance(h, _TqdmHandler) for h in logger.handlers):
        logger.addHandler(_TqdmHandler())
    logger.propagate = False


configure()  # INFO until the command line (or a library user) says otherwise
