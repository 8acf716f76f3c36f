"""Where log lines go: one handler on stderr for every `job.*` logger, passwords scrubbed,
tracebacks only where asked for."""

from __future__ import annotations

import logging
import os
import sys
from typing import Any

from job.support.redact import redact

log = logging.getLogger("job")


class _Output(logging.Formatter):
    """Log lines for people: passwords scrubbed; tracebacks only where asked for (`--verbose`,
    and always in the scheduler's log, which is read after the fact)."""

    def __init__(self, fmt: str, *, tracebacks: bool) -> None:
        super().__init__(fmt)
        self.tracebacks = tracebacks

    def formatException(self, ei: Any) -> str:
        return super().formatException(ei) if self.tracebacks else ""

    def format(self, record: logging.LogRecord) -> str:
        return redact(super().format(record))


def setup_logging(verbose: bool, *, tracebacks: bool = False) -> None:
    """Every module logs under `job.*` (its `__name__`); one handler on stderr shows them."""
    os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "3")
    # Dask configures its own loggers when it is imported, in this process and in each
    # worker process: quiet unless asked for.
    os.environ["DASK_LOGGING__DISTRIBUTED"] = "info" if verbose else "error"
    if sys.stderr.isatty():
        from rich.logging import RichHandler

        handler: logging.Handler = RichHandler(show_path=False, rich_tracebacks=False)
        fmt = "%(message)s"
    else:
        handler = logging.StreamHandler(sys.stderr)
        fmt = "%(asctime)s %(levelname)s %(name)s: %(message)s"
    handler.setFormatter(_Output(fmt, tracebacks=verbose or tracebacks))
    root = logging.getLogger()
    root.handlers[:] = [handler]
    root.setLevel(logging.WARNING)
    log.setLevel(logging.DEBUG if verbose else logging.INFO)
    for noisy in ("tensorflow", "absl", "matplotlib", "yfinance", "distributed"):
        logging.getLogger(noisy).setLevel(logging.ERROR)
