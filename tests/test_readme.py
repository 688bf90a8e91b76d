"""Every ```python block of README.md runs as written, against the offline models.

Blocks run in order within their section (the nearest heading above them), in one
namespace per section, from a fresh working directory. A section whose prose says it
uses names "from the quick start above" starts from a copy of what the quick start's
blocks defined (model, images, labels); the README says so where it happens, so a
reader copying the blocks knows what to run first. A snippet that drifts from the code
fails here.
"""

from __future__ import annotations

import os
import re
import warnings
from collections.abc import Iterator
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import pytest

README = Path(__file__).resolve().parents[1] / "README.md"
QUICK_START = "Use"
REUSE = "from the quick start above"


@dataclass
class Section:
    """One heading's ```python blocks, as (first code line, code)."""

    title: str
    line: int
    blocks: list[tuple[int, str]] = field(default_factory=list)
    prose: list[str] = field(default_factory=list)

    @property
    def reuses_quick_start(self) -> bool:
        return REUSE in " ".join(" ".join(self.prose).split())


def sections(text: str) -> list[Section]:
    """The sections of ``text`` that hold ```python blocks, in order."""
    found: list[Section] = []
    current = Section("(top)", 1)
    fence: list[str] | None = None
    start = 0
    for number, line in enumerate(text.splitlines(), start=1):
        if fence is not None:
            if line.strip() == "```":
                current.blocks.append((start, "\n".join(fence) + "\n"))
                fence = None
            else:
                fence.append(line)
        elif line.startswith("```python"):
            fence, start = [], number + 1
        elif line.startswith("#"):
            if current.blocks:
                found.append(current)
            current = Section(line.lstrip("#").strip(), number)
        else:
            current.prose.append(line)
    if fence is not None:
        raise ValueError(f"README.md: the ```python block opened at line {start - 1} never closes")
    if current.blocks:
        found.append(current)
    return found


def run_section(section: Section, namespace: dict[str, Any], source: str = str(README)) -> None:
    """Execute the section's blocks in ``namespace``; tracebacks point at README lines.

    Warning filters a block sets (the README shows how to silence one) end with the section.
    """
    with warnings.catch_warnings():
        for line, code in section.blocks:
            exec(compile("\n" * (line - 1) + code, source, "exec"), namespace)


@pytest.fixture(autouse=True, scope="module")
def _one_thread() -> Iterator[None]:
    # The README's models are tiny: on a shared 2-core machine one thread is 3× cheaper.
    import torch

    threads = torch.get_num_threads()
    torch.set_num_threads(1)
    yield
    torch.set_num_threads(threads)


@pytest.fixture(autouse=True)
def _headless(monkeypatch: pytest.MonkeyPatch) -> Iterator[None]:
    import matplotlib

    matplotlib.use("Agg")
    yield
    import matplotlib.pyplot as plt

    plt.close("all")


SECTIONS = sections(README.read_text(encoding="utf-8"))


@pytest.fixture(scope="module")
def quick_start(_one_thread: None, tmp_path_factory: pytest.TempPathFactory) -> dict[str, Any]:
    """What the quick start's blocks define, run once for every section that reuses it."""
    import matplotlib

    matplotlib.use("Agg")
    [section] = [s for s in SECTIONS if s.title == QUICK_START]
    namespace: dict[str, Any] = {"__name__": "__readme__"}
    here = Path.cwd()
    os.chdir(tmp_path_factory.mktemp("quick_start"))
    try:
        run_section(section, namespace)
    finally:
        os.chdir(here)
    return namespace


@pytest.mark.parametrize("section", SECTIONS, ids=[s.title for s in SECTIONS])
def test_readme_section_runs(
    section: Section,
    quick_start: dict[str, Any],
    tmp_path: Path,
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    monkeypatch.chdir(tmp_path)
    if section.title == QUICK_START:
        assert {"model", "images", "labels"} <= quick_start.keys()
        return
    namespace = dict(quick_start) if section.reuses_quick_start else {"__name__": "__readme__"}
    run_section(section, namespace)


def test_sections_that_use_quick_start_names_say_so() -> None:
    # A block that reads `model` or `images` without defining them, in a section that does
    # not point to the quick start, would only run here because of a hidden prelude.
    uses = re.compile(r"\b(model|images|labels)\b")
    defines = re.compile(r"^\s*(?:\w+\s*,\s*)*(model|images|labels)\b[^=\n]*=(?!=)", re.MULTILINE)
    for section in SECTIONS:
        code = "".join(block for _, block in section.blocks)
        if section.title != QUICK_START and uses.search(code) and not defines.search(code):
            assert section.reuses_quick_start, f"section {section.title!r} (line {section.line})"


def test_a_drifted_snippet_fails() -> None:
    text = (
        "# Demo\n\nWith `x` from the quick start above:\n\n```python\n"
        "import integrad\nintegrad.explain(model, images, targte=labels)\n```\n"
    )
    [section] = sections(text)
    assert section.reuses_quick_start and section.blocks[0][0] == 6
    namespace = {"model": object(), "images": None, "labels": None}
    with pytest.raises(TypeError, match="targte"):
        run_section(section, namespace, source="fake.md")


def test_an_unclosed_block_is_an_error() -> None:
    with pytest.raises(ValueError, match="opened at line 2 never closes"):
        sections("# A\n```python\nx = 1\n")


def test_every_python_block_is_collected() -> None:
    text = README.read_text(encoding="utf-8")
    assert sum(len(s.blocks) for s in SECTIONS) == text.count("```python")
    assert QUICK_START in [s.title for s in SECTIONS]


# --- the command-line examples of "Explain a whole dataset" run as written ----------------------


def _shell_commands() -> list[str]:
    """The README's shell block that runs ``integrad run`` on the examples, one command each
    (backslash continuations joined, comments dropped)."""
    blocks: list[list[str]] = []
    inside = False
    for line in README.read_text(encoding="utf-8").splitlines():
        if line.startswith("```"):
            inside = not inside
            if inside:
                blocks.append([])
        elif inside:
            blocks[-1].append(line)
    [block] = [
        "\n".join(b) for b in blocks if "integrad run --model examples.runs:" in "\n".join(b)
    ]
    joined = re.sub(r"\\\n\s*", "", block)
    return [line.strip() for line in joined.splitlines() if line.strip() and line[0] != "#"]


def test_the_dataset_commands_run_as_written(tmp_path: Path) -> None:
    # From a fresh directory, as a user who copied examples/ would: digits, the breast-cancer
    # table and MiniLM sentences, each through the installed `integrad` command.
    import shutil
    import subprocess
    import sys

    import integrad

    root = README.parent
    shutil.copytree(root / "examples", tmp_path / "examples")
    bin_dir = Path(sys.executable).parent
    env = {**os.environ, "PYTHONPATH": str(root / "src"), "PATH": f"{bin_dir}:{os.environ['PATH']}"}
    commands = _shell_commands()
    assert commands[0].startswith("python examples/runs.py")
    assert sum(c.startswith("integrad run ") for c in commands) == 3
    for command in commands:
        done = subprocess.run(
            command.replace("python ", f"{sys.executable} ", 1),
            shell=True, cwd=tmp_path, env=env, capture_output=True, text=True, timeout=600,
        )  # fmt: skip
        assert done.returncode == 0, f"{command}\n{done.stdout[-2000:]}\n{done.stderr[-2000:]}"
    for name, examples in (("digits", 360), ("cancer", 569), ("minilm", 4)):
        run = integrad.open_run(tmp_path / "out" / "runs" / name)
        assert len(run) == examples
        assert float(run.summary()["relative_delta"].max()) < 0.05
