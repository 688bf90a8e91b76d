"""Explain a whole dataset into a resumable run directory.

:func:`run` explains every example of a dataset with any method of the family and
stores the results as it goes (see :mod:`integrad.runs.store` for the directory's
layout and why a killed process loses at most its current batch); calling it again
resumes. ``backend="ray"`` explains the same batches on a pool of Ray workers
(:mod:`integrad.runs.on_ray`) while this process writes the same store.
:func:`open_run` reads a run back as a :class:`Run`: ``run[i]`` is example ``i``'s
Explanation, ``run.summary()`` a table of every example's completeness and cost.
``python -m integrad`` (or ``integrad``) is the command line
(:mod:`integrad.cli`). pandas (for summaries) and tqdm (for the progress bar) are
imported only when used.
"""

from .job import RunInterrupted, open_run, run
from .results import Run
from .store import RunMismatchError

__all__ = ["Run", "RunInterrupted", "RunMismatchError", "open_run", "run"]
