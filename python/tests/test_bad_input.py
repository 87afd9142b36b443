"""The bad-input matrix: every public entry point of maskattn x every kind of bad input.

What it proves:
  * The matrix covers every public callable: the functions of maskattn,
    maskattn.optim and maskattn.viz, each public class (its constructor) and
    each public method and __call__ of it are enumerated from the modules
    themselves; a name without cases in MATRIX fails
    test_every_public_entry_point_is_in_the_matrix, so a new binding cannot be
    forgotten (nor a stale one kept).
  * Every array argument of every entry point, given None (when required), an
    object that is no array, a str, a dict, an array of the wrong rank or of a
    wrong dtype (float64, float16, int, bool, complex, a float64 torch tensor
    for float32 arguments; float and bool for integer ones), raises ValueError
    whose message names the argument ("maskattn: <argument>: expected ...").
    Never TypeError, RuntimeError or a crash.
  * The same values in another layout (Fortran order, negative strides, a
    strided last dimension, a nested list, a torch tensor, one that requires
    grad) give the same result as the C-contiguous numpy array, within
    rtol = atol = 1e-6 (the library reads them without a copy or through one
    contiguous copy; the arithmetic is the same).
  * The entry-point specific cases: mismatched dimensions, zero and negative
    sizes, sizes whose product overflows int64 (L*L*B*H), out-of-range token
    ids, empty batches (a defined empty result where the contract allows it),
    NaN/Inf where only finite values make sense, unknown option strings.

Arguments of another Python type that are not arrays (a str where an int is
expected, a dict where a Module is) raise TypeError naming the argument or
nanobind's "incompatible function arguments", as documented in docs/python.md.
test_errors.py holds the detailed messages of the array-free functions;
test_nan_inf.py the NaN/Inf propagation through attention and the modules.
"""

from __future__ import annotations

import gc
import inspect

import pytest

import maskattn as ma
from bad_input_rows import MATRIX

# ---- the public entry points, enumerated --------------------------------------


def public_entry_points() -> list[str]:
    """'ma.f', 'ma.Class', 'ma.Class.method' for maskattn, maskattn.optim and maskattn.viz."""
    names = []
    for prefix, module in (("ma", ma), ("ma.optim", ma.optim), ("ma.viz", ma.viz)):
        for name in module.__all__:
            obj = getattr(module, name)
            if inspect.isclass(obj):
                names.append(f"{prefix}.{name}")
                for attr, value in vars(obj).items():
                    public = not attr.startswith("_") or attr in ("__call__", "__and__")
                    if public and callable(value) or isinstance(value, staticmethod):
                        names.append(f"{prefix}.{name}.{attr}")
            elif callable(obj):
                names.append(f"{prefix}.{name}")
    return sorted(names)



def test_every_public_entry_point_is_in_the_matrix():
    public = set(public_entry_points())
    assert len(public) > 90, sorted(public)  # the enumeration itself works
    missing = sorted(public - set(MATRIX))
    stale = sorted(set(MATRIX) - public)
    assert not missing, f"public entry points without bad-input cases: {missing}"
    assert not stale, f"cases for names that are not public: {stale}"
    empty = sorted(n for n, cases in MATRIX.items() if not cases)
    assert not empty, f"entry points with no case: {empty}"


@pytest.fixture(scope="module", autouse=True)
def _release_the_matrix():
    """After the matrix, drop its calls. Their closures hold module instances
    (the modules under test), and pytest keeps every case until the
    interpreter exits, after the extension's teardown: nanobind would report
    them as leaked."""
    yield
    for cases in MATRIX.values():
        for case in cases:
            case.thunk = case.check = None
    gc.collect()


def _all_cases():
    for name in sorted(MATRIX):
        for case in MATRIX[name]:
            yield pytest.param(case, id=f"{name}:{case.id}")


@pytest.mark.parametrize("case", list(_all_cases()))
def test_bad_input(case):
    case.run()
