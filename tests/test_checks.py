"""Warnings point at the user's line, also when integrad itself is the script run."""

from __future__ import annotations

import os
import warnings

from integrad import _checks


def warning_location(caller_filename: str) -> str:
    """Where a warning lands that integrad code (in the package) raises when called from
    code compiled as ``caller_filename``."""
    inside = os.path.join(os.path.dirname(os.path.abspath(_checks.__file__)), "script_run.py")
    namespace = {"warnings": warnings, "user_stacklevel": _checks.user_stacklevel}
    exec(
        compile(
            "def run():\n    warnings.warn('x', UserWarning, stacklevel=user_stacklevel())\n",
            inside,
            "exec",
        ),
        namespace,
    )
    with warnings.catch_warnings(record=True) as caught:
        warnings.simplefilter("always")
        exec(compile("run()\n", caller_filename, "exec"), {"run": namespace["run"]})
    [warning] = caught
    return warning.filename


def test_a_warning_points_at_the_users_line():
    assert warning_location("/home/user/analysis.py") == "/home/user/analysis.py"


def test_under_python_dash_m_a_warning_points_at_the_module_run_not_at_runpy():
    # `python -m integrad.demo`: the first frame outside the package is runpy's frozen code.
    location = warning_location("<frozen runpy>")
    assert location.endswith(os.path.join("integrad", "script_run.py"))
