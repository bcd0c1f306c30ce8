"""Logging set-up shared by the workflow scripts and the command line, and how a failed stage is reported."""

from __future__ import annotations

import contextlib
import logging
import os
import signal
import sys
import threading
from collections.abc import Callable, Iterator
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


TERMINATING_SIGNALS = tuple(
    getattr(signal, name) for name in ("SIGTERM", "SIGHUP", "SIGINT") if hasattr(signal, name)
)
"""The signals a scheduler, a closed terminal or Ctrl-C send to end a process."""


class Terminated(KeyboardInterrupt):
    """A terminating signal arrived: raised where the program is, so every ``finally`` (the removal of a
    half-written temporary file among them) runs before the process ends."""

    def __init__(self, signum: int) -> None:
        super().__init__(signal.Signals(signum).name)
        self.signum = signum


def _raise_terminated(signum: int, _frame: object) -> None:
    raise Terminated(signum)


@contextlib.contextmanager
def signals_as_exceptions() -> Iterator[None]:
    """Turn SIGTERM, SIGHUP and SIGINT into ``Terminated`` while the block runs (main thread only; the
    previous handlers come back after it)."""
    if threading.current_thread() is not threading.main_thread():
        yield
        return
    previous = {signum: signal.signal(signum, _raise_terminated) for signum in TERMINATING_SIGNALS}
    try:
        yield
    finally:
        for signum, handler in previous.items():
            signal.signal(signum, handler)


def run_reported(stage: Callable[[], object], failure_status: int = 1) -> int:
    """Run ``stage``; its exit status if it returns one, else 0.

    An error becomes one logged line and ``failure_status``; a terminating signal ends it with its files
    cleaned up, one line naming the signal and the shell's status for it (128 + its number).
    """
    try:
        with signals_as_exceptions():
            result = stage()
        return result if isinstance(result, int) else 0
    except Terminated as stop:
        log.error("stopped by %s; files being written were removed, finished ones are kept", stop.args[0])
        return 128 + stop.signum
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
