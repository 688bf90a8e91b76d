"""Hooks that belong to one call: safe when one model is explained from several threads.

Layer IG, neuron IG and exact mode put forward hooks on the caller's modules. A hook
is seen by every forward pass of that module, also one that another thread runs at
the same time for its own call, so a plain hook would record or replace the other
call's activations. Here each call opens a :func:`call_scope` and wraps its hooks
with :func:`scoped`: a wrapped hook acts only inside the context (thread, or asyncio
task) that opened its scope, and is a no-op for every other forward pass.
"""

from __future__ import annotations

from collections.abc import Callable, Iterator
from contextlib import contextmanager
from contextvars import ContextVar
from typing import Any, TypeVar

__all__ = ["call_scope", "scoped"]

_ACTIVE: ContextVar[frozenset[object]] = ContextVar("integrad_hook_scopes", default=frozenset())

F = TypeVar("F", bound=Callable[..., Any])


@contextmanager
def call_scope() -> Iterator[object]:
    """Open a scope for one call's hooks; yields the token to pass to :func:`scoped`."""
    token = object()
    reset = _ACTIVE.set(_ACTIVE.get() | {token})
    try:
        yield token
    finally:
        _ACTIVE.reset(reset)


def scoped(token: object, hook: F) -> F:
    """``hook``, acting only in forward passes run inside ``token``'s scope (else ``None``)."""

    def wrapped(*args: Any, **kwargs: Any) -> Any:
        if token in _ACTIVE.get():
            return hook(*args, **kwargs)
        return None

    return wrapped  # type: ignore[return-value]
