"""Logging for the long-running processes: to stderr and a rotating file under FLYWHEEL_HOME."""

from __future__ import annotations

import logging
import logging.handlers
from pathlib import Path

FORMAT = "%(asctime)s %(levelname)-7s %(name)s: %(message)s"


def configure_logging(level: str, log_file: Path) -> None:
    log_file.parent.mkdir(parents=True, exist_ok=True)
    file_handler = logging.handlers.RotatingFileHandler(
        log_file, maxBytes=20 * 1024 * 1024, backupCount=5
    )
    stream = logging.StreamHandler()
    for handler in (file_handler, stream):
        handler.setFormatter(logging.Formatter(FORMAT))
    logging.basicConfig(level=level, handlers=[file_handler, stream], force=True)
    # httpx logs every request's full URL at INFO (a webhook's URL holds its secret).
    for noisy in ("aiokafka", "kafka", "apscheduler", "httpx"):
        logging.getLogger(noisy).setLevel(max(logging.WARNING, logging.getLevelName(level)))
