"""What the context-manager switches of `selective_scan` (`use_backend`, `use_custom_op`, `use_route_reading`)
share: a context variable set for the duration of a block, and the parsing of the string enums they take.

A context variable holds its value per thread and per asyncio task. The scan reads each switch in eager Python
only (torch.compile reads the backend once while it traces, through `torch.compiler.assume_constant_result`), so a
compiled graph keeps what the switches said when it was traced.
"""

from __future__ import annotations

import contextlib
import contextvars
import enum
from collections.abc import Iterator
from typing import TypeVar

T = TypeVar("T")
Option = TypeVar("Option", bound=enum.Enum)


def parse_option(kind: type[Option], value: Option | str, what: str) -> Option:
    """`value` as a member of the string enum `kind`: a member, or a member's value in any case. `what` names the
    argument in the ValueError/TypeError."""
    names = [member.value for member in kind]
    if isinstance(value, kind):
        return value
    if not isinstance(value, str):
        raise TypeError(f"{what}: expected a {kind.__name__} or one of {names}, got {type(value).__name__}")
    try:
        return kind(value.strip().lower())
    except ValueError:
        raise ValueError(f"{what}: expected one of {names}, got {value!r}") from None


@contextlib.contextmanager
def switched(setting: contextvars.ContextVar[T], value: T) -> Iterator[T]:
    """`setting` holds `value` inside the block."""
    token = setting.set(value)
    try:
        yield value
    finally:
        setting.reset(token)
