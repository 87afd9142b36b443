"""docs/errors.md's examples, run as a doctest.

What it proves: every `>>>` example on the errors page runs, and each error
it shows is raised with exactly the message printed there (`...` stands for
a temporary path). The page cannot drift from what the library says.
"""

from __future__ import annotations

import doctest
import pathlib

PAGE = pathlib.Path(__file__).resolve().parents[2] / "docs" / "errors.md"


def test_errors_page_examples():
    result = doctest.testfile(
        str(PAGE),
        module_relative=False,
        optionflags=doctest.ELLIPSIS,
        raise_on_error=False,
        verbose=False,
    )
    assert result.attempted >= 15, f"{PAGE} lost its examples: {result.attempted} ran"
    assert result.failed == 0, f"{result.failed} of {result.attempted} examples in {PAGE} failed"
