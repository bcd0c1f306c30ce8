"""Logging set-up shared by the workflow scripts and the command line, and how a failed stage is reported."""

from __future__ import annotations

import logging
import os
import sys
from collections.abc import Callable
from pathlib import Path

from mednca.errors import MednCAError

FORMAT = "%(asctime)s %(levelname)s %(name)s: %(message)s"
#: Set to 1 to see the traceback of an unexpected error instead of its one-line summary.
TRACEBACK_VARIABLE = "MEDNCA_TRACEBACK"

log = logging.getLogger("mednca")


def configure_logging(log_file: Path | None = None, level: int = logging.INFO) -> None:
    """Log to stderr and, when given, to ``log_file`` (the rule's ``log:``), replacing earlier handlers."""
    handlers: list[logging.Handler] = [logging.StreamHandler(sys.stderr)]
    if log_file is not None:
        Path(log_file).parent.mkdir(parents=True, exist_ok=True)
        handlers.append(logging.FileHandler(log_file, mode="w"))
    logging.basicConfig(level=level, format=FORMAT, handlers=handlers, force=True)


def failure_message(error: BaseException) -> str:
    """What a user is told when ``error`` ended a stage: its own message, or a one-line summary."""
    if isinstance(error, MednCAError):
        return str(error)
    if isinstance(error, OSError) and error.filename is not None:
        return f"{error.filename}: {error.strerror or error}"
    if isinstance(error, MemoryError):
        return "out of memory; free memory, use smaller inputs or a smaller batch size"
    detail = str(error).strip().splitlines()[0] if str(error).strip() else ""
    return (
        f"unexpected {type(error).__name__}{': ' + detail if detail else ''} "
        f"(set {TRACEBACK_VARIABLE}=1 to see where it happened)"
    )


def run_reported(stage: Callable[[], object], failure_status: int = 1) -> int:
    """Run ``stage``; its exit status if it returns one, else 0.

    An error becomes one logged line and ``failure_status`` (130 when interrupted).
    """
    try:
        result = stage()
        return result if isinstance(result, int) else 0
    except KeyboardInterrupt:
        log.error("interrupted")
        return 130
    except Exception as error:
        if os.environ.get(TRACEBACK_VARIABLE) == "1" and not isinstance(error, MednCAError):
            raise
        log.error("%s", failure_message(error))
        return failure_status


def run_logged(stage: Callable[[], object], log_file: Path | None = None) -> None:
    """Run a workflow script's stage, logging to ``log_file``; any failure exits with one error line."""
    configure_logging(log_file)

    def call() -> None:
        stage()

    status = run_reported(call)
    if status:
        sys.exit(status)
