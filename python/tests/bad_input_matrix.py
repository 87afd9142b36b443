"""The cases of test_bad_input.py: MATRIX maps each public entry point to its cases.

An Entry names a call and the good values of its array arguments; from them
array_cases() derives, per array argument, the generic rows of the matrix
(None, no array, wrong rank, wrong dtype: ValueError naming the argument;
other layouts of the same values: the same result). Each Entry adds the cases
that only it has (sizes, ids, option strings). A case either raises
ValueError with a message naming the argument (err), or gives a defined
result that the case asserts (ok).
"""

from __future__ import annotations

import pathlib
import re
from dataclasses import dataclass, field
from typing import Any, Callable

import numpy as np
import pytest
import torch

import maskattn as ma

REPO = pathlib.Path(__file__).resolve().parents[2]
TINY_BERT = REPO / "tests" / "data" / "tiny_bert"  # hidden 16, 4 heads, 2 layers, vocab 48

# Results of the same values in another layout agree within this (the same
# arithmetic on the same numbers; a copy changes nothing but the addresses).
LAYOUT_RTOL = LAYOUT_ATOL = 1e-6

OMIT = object()  # an argument left out of the call (its default applies)


def named(argument: str) -> str:
    """The library's message form: '<argument>: expected' (an index may follow the name).

    argument may list alternatives, "array|keep": the Python name or the
    library's (keep() reads its `array` under the name of the part)."""
    names = "|".join(re.escape(a) for a in argument.split("|"))
    return rf"(^|[\s:])({names})(\[[^\]]*\])?: expected"


@dataclass
class Case:
    id: str
    thunk: Callable[[], Any]
    match: str | None = None  # ValueError whose message matches this
    check: Callable[[Any], None] | None = None  # or a result that passes this
    exception: type = ValueError

    def run(self) -> None:
        if self.check is None:
            with pytest.raises(self.exception, match=self.match):
                self.thunk()
        else:
            self.check(self.thunk())


def err(case_id: str, thunk, argument: str, more: str = "") -> Case:
    """ValueError naming `argument` (then matching `more`)."""
    return Case(case_id, thunk, match=named(argument) + more)


def err_re(case_id: str, thunk, pattern: str) -> Case:
    """ValueError matching `pattern` (a message naming the argument its own way)."""
    return Case(case_id, thunk, match=pattern)


def type_err(case_id: str, thunk, pattern: str = "") -> Case:
    """TypeError: an argument of the wrong Python type that is not an array (documented)."""
    return Case(case_id, thunk, match=pattern or None, exception=TypeError)


def ok(case_id: str, thunk, check: Callable[[Any], None]) -> Case:
    return Case(case_id, thunk, check=check)


def canon(x):
    """A result as plain comparable values (arrays, tuples, dicts, Mask descriptions)."""
    if isinstance(x, np.ndarray):
        return np.asarray(x)
    if isinstance(x, (tuple, list)):
        return tuple(canon(v) for v in x)
    if isinstance(x, dict):
        return {k: canon(v) for k, v in x.items()}
    if isinstance(x, ma.Mask):
        return x.describe()
    return x


def assert_same(a, b, path="result"):
    a, b = canon(a), canon(b)
    if isinstance(a, np.ndarray) or isinstance(b, np.ndarray):
        assert isinstance(a, np.ndarray) and isinstance(b, np.ndarray), path
        assert a.shape == b.shape and a.dtype == b.dtype, (path, a.shape, b.shape)
        if a.dtype.kind == "f":
            np.testing.assert_allclose(a, b, rtol=LAYOUT_RTOL, atol=LAYOUT_ATOL, err_msg=path)
        else:
            np.testing.assert_array_equal(a, b, err_msg=path)
    elif isinstance(a, tuple):
        assert isinstance(b, tuple) and len(a) == len(b), path
        for i, (x, y) in enumerate(zip(a, b)):
            assert_same(x, y, f"{path}[{i}]")
    elif isinstance(a, dict):
        assert isinstance(b, dict) and a.keys() == b.keys(), path
        for k in a:
            assert_same(a[k], b[k], f"{path}[{k!r}]")
    elif isinstance(a, float) and isinstance(b, float):
        assert a == pytest.approx(b, rel=LAYOUT_RTOL, abs=LAYOUT_ATOL, nan_ok=True), path
    else:
        assert a == b, (path, a, b)


# ---- array arguments: the generic rows ------------------------------------------

FLOAT_DTYPES_BAD = [np.float64, np.float16, np.int32, np.int64, np.bool_, np.complex64]
INT_DTYPES_BAD = [np.float32, np.float64, np.bool_, np.complex64]


@dataclass
class Arr:
    """An array argument: its good value and what the argument takes.

    kind: "float32" (float32 only), "float" (float32 or float64), "int" (any
    integer dtype), "numeric" (any but bool, read as float32), "bool" (bool
    only), "mask" (bool or float, torch's mask convention), "any" (any
    supported dtype: no dtype row). ranks: bad ranks to try (values derived
    from the good one). required: None is an error (else it means absent).
    layouts: whether other layouts of the same values are rows.
    """

    value: np.ndarray
    kind: str = "float32"
    ranks: tuple = ()
    required: bool = True
    layouts: bool = True
    message: str | None = None  # the name the message uses, when not the argument's


def with_rank(value: np.ndarray, rank: int) -> np.ndarray:
    """An array of `rank` holding value's first elements (or a broadcast of them)."""
    if rank == 0:
        return np.asarray(value.reshape(-1)[0])
    if rank < value.ndim:
        return value.reshape(value.shape[: rank - 1] + (-1,))
    return value.reshape((1,) * (rank - value.ndim) + value.shape)


def other_layouts(value: np.ndarray):
    """(id, the same values in another layout)."""
    out = []
    if value.ndim >= 2:
        out.append(("fortran", np.asfortranarray(value)))
    if value.ndim >= 1 and value.shape[-1] > 1:
        out.append(("negative_strides", np.flip(np.flip(value, -1).copy(), -1)))
        out.append(("strided_last_dim", np.repeat(value, 2, axis=-1)[..., ::2]))
    out.append(("list", value.tolist()))
    out.append(("torch", torch.from_numpy(value.copy())))
    if value.dtype == np.float32:
        out.append(("torch_requires_grad", torch.from_numpy(value.copy()).requires_grad_()))
    return out


@dataclass
class Entry:
    """An entry point: call(**arrays) runs it; arrays are its array arguments."""

    call: Callable[..., Any]
    arrays: dict[str, Arr] = field(default_factory=dict)
    extra: list[Case] = field(default_factory=list)

    def run(self, **overrides):
        args = {n: a.value for n, a in self.arrays.items()}
        args.update(overrides)
        return self.call(**{n: v for n, v in args.items() if v is not OMIT})

    def cases(self) -> list[Case]:
        out = []
        for name, arr in self.arrays.items():
            out += self._array_cases(name, arr)
        return out + self.extra

    def _array_cases(self, name: str, arr: Arr) -> list[Case]:
        who = arr.message or name
        run = self.run
        out = []

        def bad(case_id, value, more=""):
            out.append(err(f"{name}={case_id}", lambda: run(**{name: value}), who, more))

        if arr.required:
            bad("None", None)
        else:
            out.append(
                ok(f"{name}=None", lambda: run(**{name: None}),
                   lambda r: assert_same(r, run(**{name: OMIT})))
            )
        bad("object", object())
        bad("str", "text")
        bad("dict", {"a": 1})
        for rank in arr.ranks:
            bad(f"rank_{rank}", with_rank(arr.value, rank))
        dtypes = {"float32": FLOAT_DTYPES_BAD, "int": INT_DTYPES_BAD,
                  "float": [np.float16, np.int64, np.bool_, np.complex64],
                  "numeric": [np.bool_, np.float16, np.complex64],
                  "bool": [np.float32, np.int64], "mask": [np.int64, np.float16, np.complex64]}
        for dtype in dtypes.get(arr.kind, []):
            with np.errstate(invalid="ignore"):  # -inf as an int: any value will do
                bad(f"dtype_{np.dtype(dtype).name}", arr.value.astype(dtype))
        if arr.kind == "float32":
            bad("torch_float64", torch.from_numpy(arr.value.astype(np.float64)))
        if arr.kind == "int":
            bad("torch_float32", torch.from_numpy(arr.value.astype(np.float32)))
        if arr.layouts:
            for layout, value in other_layouts(arr.value):
                out.append(
                    ok(f"{name}={layout}", lambda value=value: run(**{name: value}),
                       lambda r: assert_same(r, run()))
                )
        return out


def randn(*shape, seed=0) -> np.ndarray:
    return np.random.default_rng(seed + len(shape)).standard_normal(shape).astype(np.float32)


def ids(*shape, high, seed=0) -> np.ndarray:
    return np.random.default_rng(seed).integers(0, high, shape).astype(np.int64)


def broadcast_huge(shape) -> np.ndarray:
    """A float32 array of `shape` that takes no memory (stride 0 but the last dim)."""
    return np.broadcast_to(np.zeros(shape[-1], np.float32), shape)


def assert_shape(shape):
    def check(r):
        assert np.asarray(r).shape == shape, (np.asarray(r).shape, shape)

    return check


def assert_empty_tuple_shapes(*shapes):
    def check(r):
        assert tuple(np.asarray(x).shape for x in r) == shapes

    return check


MATRIX: dict[str, list[Case]] = {}


def entry(name: str, e: Entry) -> None:
    MATRIX.setdefault(name, []).extend(e.cases())


def cases(name: str, *rows: Case) -> None:
    MATRIX.setdefault(name, []).extend(rows)

