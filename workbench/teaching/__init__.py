"""What the guided notebooks (``notebooks/``) use besides the public API, and nothing else uses.

    >>> from workbench.teaching import exercises, tutorial
    >>> work = tutorial.setup("03_validate")     # banner, quiet ORT log, this notebook's folder
    >>> exercises.check("03", answer)           # Correct! ... / Not yet. Hint: ...

``tutorial`` sizes the runs (smoke mode in CI), places the files and turns core results into small
tables and into sentences that say what this run measured (``readings``, re-exported by ``tutorial``); ``exercises`` holds the exercise checks and their reference answers. Every number they show
is computed by ``workbench``'s core, zoo or doctor. Nothing in ``workbench`` imports this package.
"""

from __future__ import annotations

__all__ = ["exercises", "tutorial"]
