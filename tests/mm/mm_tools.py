"""The mm tests' access to tools/train.py and tools/test.py: the scripts loaded as modules, and the messages logged to
MMEngine's current logger."""

from __future__ import annotations

import logging
from collections.abc import Iterator
from contextlib import contextmanager

from mmengine.logging import MMLogger
from tool_modules import load_tool

__all__ = ["load_tool", "log_messages"]


@contextmanager
def log_messages() -> Iterator[list[str]]:
    """The messages logged within to MMEngine's current logger, where `print_log(logger='current')` writes."""
    messages: list[str] = []
    handler = logging.Handler()
    handler.emit = lambda record: messages.append(record.getMessage())
    logger = MMLogger.get_current_instance()
    logger.addHandler(handler)
    try:
        yield messages
    finally:
        logger.removeHandler(handler)
