"""``python -m integrad.text``: which words make two sentences similar (see :func:`main`).

A package's ``__main__``, so that ``python -m`` does not run a module that ``import
integrad`` has already imported (runpy's RuntimeWarning).
"""

from . import main

main()
