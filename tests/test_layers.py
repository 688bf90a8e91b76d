"""The package's layers import downwards only: core, methods, views, then domain helpers and tools.

Read from the source (every ``import`` statement, also those inside functions), so a lazy
import that climbs a layer fails here too. The one sanctioned exception: the Explanation's
thin delegations (``plot``, ``to_html``) to the views.
"""

from __future__ import annotations

import ast
from pathlib import Path

import pytest

PACKAGE = Path(__file__).resolve().parents[1] / "src" / "integrad"

CORE = {
    "_checks", "_engine", "_hooks", "_inputs", "_memory", "_modules", "_patterson",
    "_problem", "_tensorfiles", "_tokens", "baselines", "explanation", "io", "quadrature",
}  # fmt: skip
METHODS = {
    "_captum", "_sampling", "blur", "diagnostics", "exact", "expected_gradients",
    "gradient_shap", "gradients", "guided", "idgi", "integrated_gradients", "layer",
    "neuron", "noise_tunnel", "tolerance",
    "_hosts", "_regions",  # exact mode's helpers
    "_layer_paths",  # layer IG's
}  # fmt: skip
VIEWS = {"views"}
DOMAIN = {"images", "tables", "text", "timeseries"}
METRICS = {"metrics"}
TOOLS = {"runs", "cli", "demo", "demo_views", "__main__", "__init__"}

ALLOWED = {
    "core": CORE,
    "methods": CORE | METHODS,
    "views": CORE | VIEWS,
    "domain": CORE | METHODS | VIEWS | DOMAIN,
    "metrics": CORE | METHODS | VIEWS | DOMAIN | METRICS,
    "tools": CORE | METHODS | VIEWS | DOMAIN | METRICS | TOOLS,
}
EXCEPTIONS = {("explanation", "views")}  # Explanation.plot / to_html, imported when called


def _layer(top: str) -> str:
    for name, members in [
        ("core", CORE),
        ("methods", METHODS),
        ("views", VIEWS),
        ("domain", DOMAIN),
        ("metrics", METRICS),
        ("tools", TOOLS),
    ]:
        if top in members:
            return name
    raise AssertionError(f"module {top!r} is in no layer; add it to tests/test_layers.py")


def _imports(source: str, parts: tuple[str, ...]) -> set[str]:
    """The package's top-level modules that a module imports (relative imports resolved).

    ``parts`` is the module's path inside the package, e.g. ``("views", "images")``.
    """
    package = parts[:-1]  # a module and a package's __init__ both resolve from their folder
    found: set[str] = set()
    for node in ast.walk(ast.parse(source)):
        if isinstance(node, ast.ImportFrom) and node.level:
            base = package[: len(package) - (node.level - 1)]
            target = [*base, *(node.module.split(".") if node.module else [])]
            found.update([target[0]] if target else [a.name for a in node.names])
        else:
            names = [node.module or ""] if isinstance(node, ast.ImportFrom) else []
            if isinstance(node, ast.Import):
                names = [alias.name for alias in node.names]
            found.update(n.split(".")[1] for n in names if n.startswith("integrad."))
    return found


MODULES = sorted(p for p in PACKAGE.rglob("*.py"))


@pytest.mark.parametrize("path", MODULES, ids=lambda p: str(p.relative_to(PACKAGE)))
def test_imports_go_down_the_layers(path: Path) -> None:
    rel = path.relative_to(PACKAGE)
    top = rel.parts[0].removesuffix(".py")
    layer = _layer(top)
    climbing = {
        name
        for name in _imports(path.read_text(encoding="utf-8"), rel.with_suffix("").parts)
        - ALLOWED[layer]
        if (top, name) not in EXCEPTIONS and name != "__version__"
    }
    assert not climbing, f"{rel} ({layer}) imports {sorted(climbing)} from a layer above it"


def test_the_rule_sees_climbing_imports() -> None:
    # The checker itself, on imports written every way a module could climb.
    lazy = "def f():\n    from .views import plot\n"
    assert _imports(lazy, ("quadrature",)) == {"views"}
    assert _imports("from ..runs import job\n", ("views", "images")) == {"runs"}
    assert _imports("from . import _png\n", ("views", "images")) == {"views"}
    assert _imports("from . import text, io\n", ("__init__",)) == {"text", "io"}
    assert _imports("import integrad.metrics.curves\n", ("explanation",)) == {"metrics"}
    assert _imports("from integrad.text import html\n", ("views", "text")) == {"text"}
