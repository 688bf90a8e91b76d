"""Hooks that belong to one call: safe when one model is explained from several threads.

Layer IG, neuron IG and exact mode put forward hooks on the caller's modules. A hook
is seen by every forward pass of that module, also one that another thread runs at
the same time for its own call, so a plain hook would record or replace the other
call's activations (measured before this module: relative errors up to 1.0, or
exceptions). Here each such call runs inside :func:`call_scope`, and the hooks it
registers are wrapped with :func:`scoped`: a wrapped hook acts only in forward passes
run in the context (thread, or asyncio task) that opened its scope, and is a no-op in
every other one. Nothing is shared between calls but the modules themselves.
"""

from __future__ import annotations

from collections.abc import Callable, Iterator
from contextlib import contextmanager
from contextvars import ContextVar
from typing import Any, TypeVar

__all__ = ["call_scope", "scoped"]

_ACTIVE: ContextVar[frozenset[object]] = ContextVar("integrad_hook_scopes", default=frozenset())
_CURRENT: ContextVar[object | None] = ContextVar("integrad_hook_scope", default=None)

F = TypeVar("F", bound=Callable[..., Any])


@contextmanager
def call_scope() -> Iterator[None]:
    """Open the scope of one call: hooks registered inside it act only inside it."""
    token = object()
    active = _ACTIVE.set(_ACTIVE.get() | {token})
    current = _CURRENT.set(token)
    try:
        yield
    finally:
        _CURRENT.reset(current)
        _ACTIVE.reset(active)


def scoped(hook: F) -> F:
    """``hook``, acting only in forward passes run inside the innermost open scope."""
    token = _CURRENT.get()
    if token is None:
        raise RuntimeError("integrad internal error: a scoped hook needs an open call_scope()")

    def wrapped(*args: Any, **kwargs: Any) -> Any:
        if token in _ACTIVE.get():
            return hook(*args, **kwargs)
        return None

    return wrapped  # type: ignore[return-value]
