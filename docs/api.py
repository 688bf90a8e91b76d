"""Build integrad's API reference from its docstrings with pdoc, and check its references.

    python docs/api.py --out out/docs        # `make docs`; exit status 1 on any problem

The docstrings are reStructuredText-flavoured: Sphinx roles (``:func:`explain```,
``:class:`~integrad.Explanation```, ``:mod:`integrad.io```) and double-backtick
literals. pdoc renders them with ``docformat="restructuredtext"``, which turns a role
into inline code that it links when it can name the object, and leaves it as plain text
when it cannot, silently. This script makes that loud: every role, and every literal
that names something under the package (``integrad.io.load``), must resolve the way
pdoc's own linker resolves it (relative to the class and module it is written in, then
absolute); a role pdoc does not know (``:ref:``) and a warning pdoc raises while
rendering are problems too. Sphinx's ``~`` prefix (show the last name only) is dropped
before pdoc sees it.
"""

from __future__ import annotations

import argparse
import importlib
import pkgutil
import re
import sys
import warnings
from collections.abc import Callable, Collection, Iterator, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import pdoc
import pdoc.doc
import pdoc.docstrings
import pdoc.render
import pdoc.render_helpers

ROLE = re.compile(r"(?::py)?:(\w+):`([^`]+)`")
"""A Sphinx role: ``:func:`name```; the kind and the target."""
KNOWN_ROLES = frozenset({"mod", "func", "data", "const", "class", "meth", "attr", "exc", "obj"})
"""The roles pdoc's reStructuredText conversion turns into references."""
LITERAL = re.compile(r"(?<!`)``([A-Za-z_][\w.]*?)(\(\))?``(?!`)")
"""A double-backtick literal that is a bare dotted name, possibly called: ``integrad.load()``."""
TILDE = re.compile(r"((?::py)?:\w+:`)~")


@dataclass(frozen=True)
class Problem:
    """One broken reference (or pdoc warning), where it was written."""

    where: str
    message: str

    def __str__(self) -> str:
        return f"{self.where}: {self.message}"


def _without_tildes(convert: Callable[[str, str, Path | None], str]) -> Callable[..., str]:
    def wrapped(docstring: str, docformat: str, source_file: Path | None) -> str:
        return convert(TILDE.sub(r"\1", docstring), docformat, source_file)

    return wrapped


def configure() -> None:
    """reStructuredText docstrings, Sphinx's ``~`` dropped, no source view (smaller pages)."""
    if not getattr(pdoc.docstrings.convert, "_integrad", False):
        wrapped = _without_tildes(pdoc.docstrings.convert)
        wrapped._integrad = True  # type: ignore[attr-defined]
        pdoc.docstrings.convert = wrapped  # type: ignore[assignment]
    pdoc.render.configure(docformat="restructuredtext", show_source=False)


def public_modules(package: str) -> list[str]:
    """``package`` and every submodule with no ``_``-prefixed part, sorted.

    pdoc alone would follow ``__all__``, which lists the names a user imports from the
    package, not every public module (``integrad.io``, ``integrad.views.images``).
    """
    root = importlib.import_module(package)
    names = [package]
    if hasattr(root, "__path__"):
        for info in pkgutil.walk_packages(root.__path__, prefix=f"{package}."):
            if not any(part.startswith("_") for part in info.name.split(".")):
                names.append(info.name)
    return sorted(names)


def load(packages: Sequence[str]) -> dict[str, pdoc.doc.Module]:
    """Every public module of ``packages``, as pdoc documents it."""
    names = [name for package in packages for name in public_modules(package)]
    return {name: pdoc.doc.Module.from_name(name) for name in names}


def _is_public(doc: pdoc.doc.Doc) -> str:
    # pdoc's default template documents members whose names do not start with "_"
    # (and __init__); its linker takes the same test as a string ("" for no).
    return "true" if not doc.name.startswith("_") or doc.name == "__init__" else ""


def _documented(doc: pdoc.doc.Doc) -> Iterator[pdoc.doc.Doc]:
    """``doc`` and its public members, recursively (classes' methods and attributes)."""
    yield doc
    if isinstance(doc, pdoc.doc.Namespace):
        for member in doc.own_members if isinstance(doc, pdoc.doc.Class) else doc.members.values():
            if _is_public(member) and (
                not isinstance(doc, pdoc.doc.Module) or member.modulename == doc.modulename
            ):
                yield from _documented(member)


def resolves(
    all_modules: dict[str, pdoc.doc.Module],
    module: pdoc.doc.Module,
    namespace: str,
    name: str,
) -> bool:
    """Whether pdoc links ``name`` written in ``namespace`` (a qualname) of ``module``."""
    # linkify reads only these three names from the template context it is given.
    context: Any = {"module": module, "all_modules": all_modules, "is_public": _is_public}
    code = f"<code>{name}</code>"
    linked = pdoc.render_helpers.linkify(context, code, namespace, shorten=False)
    return "<a href=" in str(linked)


def references(doc: pdoc.doc.Doc, roots: Collection[str]) -> Iterator[tuple[str, str]]:
    """The (how written, target) pairs that ``doc``'s own docstring refers to.

    Roles always; literals when they name something under one of ``roots``.
    """
    text = doc.docstring
    for match in ROLE.finditer(text):
        yield match.group(0), match.group(2)
    for match in LITERAL.finditer(ROLE.sub("", text)):
        if match.group(1).partition(".")[0] in roots and "." in match.group(1):
            yield match.group(0), match.group(1)


def check(all_modules: dict[str, pdoc.doc.Module]) -> list[Problem]:
    """Every broken reference in the docstrings pdoc renders for ``all_modules``."""
    problems = []
    roots = {name.partition(".")[0] for name in all_modules}
    for module in all_modules.values():
        for doc in _documented(module):
            if isinstance(doc, pdoc.doc.Function) and not getattr(doc.obj, "__doc__", None):
                continue  # a docstring pdoc inherits from a base class (torch's) is not ours
            namespace = "" if isinstance(doc, pdoc.doc.Module) else doc.qualname
            if isinstance(doc, (pdoc.doc.Function, pdoc.doc.Variable)):
                namespace = namespace.rpartition(".")[0]
            for written, target in references(doc, roots):
                role = ROLE.fullmatch(written)
                if role and role.group(1) not in KNOWN_ROLES:
                    problems.append(Problem(doc.fullname, f"{written}: pdoc has no such role"))
                    continue
                name = target.lstrip("~").removesuffix("()")
                if not resolves(all_modules, module, namespace, name):
                    problems.append(Problem(doc.fullname, f"{written} names nothing documented"))
    return problems


def build(packages: Sequence[str], out: Path) -> list[Problem]:
    """Write the HTML reference for ``packages`` under ``out``; return the problems found."""
    configure()
    problems: list[Problem] = []
    with warnings.catch_warnings(record=True) as caught:
        warnings.simplefilter("always")
        all_modules = load(packages)
        for module in all_modules.values():
            page = out / f"{module.fullname.replace('.', '/')}.html"
            page.parent.mkdir(parents=True, exist_ok=True)
            page.write_text(pdoc.render.html_module(module, all_modules), encoding="utf-8")
        index = pdoc.render.html_index(all_modules)
        if index:
            (out / "index.html").write_text(index, encoding="utf-8")
        (out / "search.js").write_text(pdoc.render.search_index(all_modules), encoding="utf-8")
    pdoc_dir = str(Path(pdoc.__file__).parent)
    for warning in caught:
        if warning.filename.startswith(pdoc_dir):
            problems.append(Problem("pdoc", str(warning.message)))
    return problems + check(all_modules)


def main(argv: Sequence[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--out", type=Path, default=Path("out/docs"))
    parser.add_argument("modules", nargs="*", default=["integrad"])
    args = parser.parse_args(argv)
    problems = build(args.modules, args.out)
    for problem in problems:
        print(problem, file=sys.stderr)
    pages = len(list(args.out.rglob("*.html")))
    print(f"API reference: {pages} pages in {args.out}/, {len(problems)} problem(s)")
    return 1 if problems else 0


if __name__ == "__main__":
    sys.exit(main())
