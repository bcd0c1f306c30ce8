"""Logging set-up shared by the workflow scripts and the command line."""

from __future__ import annotations

import logging
import sys
from collections.abc import Callable
from pathlib import Path

from mednca.errors import MednCAError

FORMAT = "%(asctime)s %(levelname)s %(name)s: %(message)s"


def configure_logging(log_file: Path | None = None, level: int = logging.INFO) -> None:
    """Log to stderr and, when given, to ``log_file`` (the rule's ``log:``), replacing earlier handlers."""
    handlers: list[logging.Handler] = [logging.StreamHandler(sys.stderr)]
    if log_file is not None:
        Path(log_file).parent.mkdir(parents=True, exist_ok=True)
        handlers.append(logging.FileHandler(log_file, mode="w"))
    logging.basicConfig(level=level, format=FORMAT, handlers=handlers, force=True)


def run_logged(stage: Callable[[], object], log_file: Path | None = None) -> None:
    """Run a stage; a MednCAError becomes one logged error line and exit status 1, not a traceback."""
    configure_logging(log_file)
    try:
        stage()
    except MednCAError as error:
        logging.getLogger("mednca").error("%s", error)
        sys.exit(1)
