"""Scan orders by name: `scans.get("cross")`, `scans.list_orders()`."""

from __future__ import annotations

from typing import TypeVar

from .base import ScanOrder

_ORDERS: dict[str, type[ScanOrder]] = {}

OrderType = TypeVar("OrderType", bound=type[ScanOrder])


def register(name: str):
    """Class decorator: make an order constructible as `scans.get(name, **kwargs)`."""

    def decorate(cls: OrderType) -> OrderType:
        if name in _ORDERS:
            raise ValueError(f"scan order {name!r} is already registered as {_ORDERS[name].__name__}")
        cls.name = name
        _ORDERS[name] = cls
        return cls

    return decorate


def get(order: str | ScanOrder, **kwargs: object) -> ScanOrder:
    """An order instance from a registered name (built with `kwargs`) or an order instance (returned as is)."""
    if isinstance(order, ScanOrder):
        if kwargs:
            raise TypeError(f"scans.get: keyword arguments {sorted(kwargs)} given with an order instance {order!r}")
        return order
    if not isinstance(order, str):
        raise TypeError(f"scans.get expects a scan order name or a ScanOrder instance, got {type(order).__name__}")
    try:
        cls = _ORDERS[order]
    except KeyError:
        raise ValueError(f"unknown scan order {order!r}; known orders: {', '.join(list_orders())}") from None
    return cls(**kwargs)


def list_orders() -> list[str]:
    """Registered order names, sorted."""
    return sorted(_ORDERS)
