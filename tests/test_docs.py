"""The API reference (docs/api.py): pdoc builds it, and a broken reference fails the build."""

from __future__ import annotations

import importlib
import importlib.util
import os
import sys
import textwrap
from pathlib import Path
from types import ModuleType

import pytest

if os.environ.get("CI"):
    importlib.import_module("pdoc")  # CI installs the test extra: a missing pdoc fails
else:
    pytest.importorskip("pdoc")

SCRIPT = Path(__file__).resolve().parents[1] / "docs" / "api.py"


def api() -> ModuleType:
    spec = importlib.util.spec_from_file_location("integrad_docs_api", SCRIPT)
    assert spec is not None and spec.loader is not None
    module = importlib.util.module_from_spec(spec)
    sys.modules[spec.name] = module  # dataclasses look their module up there
    spec.loader.exec_module(module)
    return module


def test_the_reference_builds_with_every_reference_resolved(tmp_path: Path) -> None:
    problems = api().build(["integrad"], tmp_path)
    assert [str(p) for p in problems] == []
    for page in ("index.html", "integrad.html", "integrad/io.html", "integrad/views/images.html"):
        assert (tmp_path / page).stat().st_size > 0, page
    # metrics.compare's docstring writes :class:`~integrad.Explanation`: pdoc links it.
    page = (tmp_path / "integrad" / "metrics" / "compare.html").read_text(encoding="utf-8")
    assert '<a href="../../integrad.html#Explanation">integrad.Explanation</a>' in page
    assert "~integrad" not in page


BROKEN = '''
    """A package with references, good and broken.

    Good: :func:`helper`, :class:`~docpkg.Thing`, :meth:`Thing.run`, ``docpkg.helper``,
    :mod:`docpkg.sub`.
    """

    from . import sub

    __all__ = ["Thing", "helper", "sub"]


    def helper() -> None:
        """Broken: :func:`nowhere`, :class:`~docpkg.Missing`, ``docpkg.gone()``, :ref:`intro`."""


    class Thing:
        """Good: :meth:`run`, :func:`docpkg.sub.deep`."""

        def run(self) -> None:
            """Broken: :meth:`walk`."""
'''


def test_a_broken_reference_fails_the_build(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str]
) -> None:
    package = tmp_path / "src" / "docpkg"
    package.mkdir(parents=True)
    (package / "__init__.py").write_text(textwrap.dedent(BROKEN))
    (package / "sub.py").write_text(
        '"""A submodule."""\n\n\ndef deep() -> None:\n    """Deep."""\n'
    )
    monkeypatch.syspath_prepend(str(tmp_path / "src"))
    docs = api()
    problems = sorted(str(p) for p in docs.build(["docpkg"], tmp_path / "out"))
    assert problems == sorted(
        [
            "docpkg.helper: :func:`nowhere` names nothing documented",
            "docpkg.helper: :class:`~docpkg.Missing` names nothing documented",
            "docpkg.helper: :ref:`intro`: pdoc has no such role",
            "docpkg.helper: ``docpkg.gone()`` names nothing documented",
            "docpkg.Thing.run: :meth:`walk` names nothing documented",
        ]
    )
    assert docs.main(["--out", str(tmp_path / "out2"), "docpkg"]) == 1
    assert "5 problem(s)" in capsys.readouterr().out
