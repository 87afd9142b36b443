"""save_safetensors / load_safetensors against the reference implementation
(the `safetensors` package, pinned in requirements-test.txt).

What it proves: files the reference writes (numpy and torch front ends) load
in maskattn bit-exact, with their metadata, for every supported dtype; files
maskattn writes load in the reference bit-exact; maskattn's bytes equal the
reference's for the same input (the reference orders "__metadata__" keys by a
per-process hash, so with two or more keys only the header's JSON value is
compared); loaded arrays are read-only views of the file that outlive the
dict; bad files and bad input raise ValueError naming the file or tensor.
"""

from __future__ import annotations

import gc
import json
import pathlib
import struct

import numpy as np
import pytest
import safetensors
import safetensors.numpy
import safetensors.torch
import torch

import maskattn as ma

DTYPES = [np.bool_, np.uint8, np.int32, np.int64, np.float32, np.float64]
TORCH_DTYPES = [torch.bool, torch.uint8, torch.int32, torch.int64, torch.float32, torch.float64]


def test_the_pinned_reference_is_installed():
    assert safetensors.__version__ == "0.8.0"


def random_bits(rng: np.random.Generator, dtype, shape) -> np.ndarray:
    """Every bit pattern of the dtype, floats included (NaN payloads, -0,
    subnormals): what a decimal round trip would lose."""
    dtype = np.dtype(dtype)
    if dtype == np.bool_:
        return rng.integers(0, 2, size=shape).astype(np.bool_)
    raw = rng.integers(0, 256, size=(*shape, dtype.itemsize), dtype=np.uint8)
    return raw.view(dtype).reshape(shape)


def same_bits(a: np.ndarray, b: np.ndarray) -> bool:
    return a.dtype == b.dtype and a.shape == b.shape and a.tobytes() == b.tobytes()


def split(raw: bytes) -> tuple[dict, bytes]:
    """(header as JSON, data section) of a safetensors file's bytes."""
    (n,) = struct.unpack("<Q", raw[:8])
    return json.loads(raw[8 : 8 + n]), raw[8 + n :]


@pytest.fixture
def tensors(rng) -> dict[str, np.ndarray]:
    """One array of each dtype, plus a scalar and a zero-size one."""
    out = {f"t_{np.dtype(d).name}": random_bits(rng, d, (3, 5)) for d in DTYPES}
    out["scalar"] = np.array(2.5, np.float64)
    out["empty"] = np.zeros((0, 4), np.float32)
    return out


# ---- reference -> maskattn ----------------------------------------------------------


@pytest.mark.parametrize("dtype", DTYPES, ids=lambda d: np.dtype(d).name)
def test_reference_numpy_files_load_bit_exact(tmp_path, rng, dtype):
    arrays = {"a": random_bits(rng, dtype, (4, 3, 2)), "b": random_bits(rng, dtype, (7,))}
    path = tmp_path / "ref.safetensors"
    safetensors.numpy.save_file(arrays, str(path), metadata={"format": "np", "ü": "∑"})
    loaded = ma.load_safetensors(path)
    assert list(loaded) == ["a", "b"]
    for name, a in arrays.items():
        assert same_bits(loaded[name], a), name
    assert ma.safetensors_metadata(path) == {"format": "np", "ü": "∑"}


@pytest.mark.parametrize("dtype", TORCH_DTYPES, ids=str)
def test_reference_torch_files_load_bit_exact(tmp_path, dtype):
    g = torch.Generator().manual_seed(7)
    if dtype == torch.bool:
        t = torch.randint(0, 2, (3, 4), generator=g).bool()
    elif dtype.is_floating_point:
        t = torch.randn(3, 4, generator=g, dtype=dtype)
        t[0, 0], t[0, 1], t[0, 2] = float("nan"), float("-inf"), -0.0
    else:
        t = torch.randint(0, 200, (3, 4), generator=g, dtype=dtype)
    path = tmp_path / "ref.safetensors"
    safetensors.torch.save_file({"w": t, "s": t[0, 0].clone()}, str(path), metadata={"k": "v"})
    loaded = ma.load_safetensors(path)
    assert same_bits(loaded["w"], t.numpy())
    assert same_bits(loaded["s"], t[0, 0].numpy())
    assert ma.safetensors_metadata(path) == {"k": "v"}


def test_reference_files_without_tensors_or_metadata(tmp_path):
    path = tmp_path / "empty.safetensors"
    safetensors.numpy.save_file({}, str(path))
    assert ma.load_safetensors(path) == {}
    assert ma.safetensors_metadata(path) == {}


def test_reference_bf16_is_a_clear_error(tmp_path):
    path = tmp_path / "bf16.safetensors"
    safetensors.torch.save_file({"h": torch.ones(2, dtype=torch.bfloat16)}, str(path))
    with pytest.raises(ValueError, match=r'tensor "h".*dtype BF16, which is not supported') as e:
        ma.load_safetensors(path)
    assert str(path) in str(e.value)


# ---- maskattn -> reference ----------------------------------------------------------


def test_our_files_load_in_the_reference_bit_exact(tmp_path, tensors):
    path = tmp_path / "ours.safetensors"
    ma.save_safetensors(path, tensors, {"format": "np", "note": "x\ny"})
    theirs = safetensors.numpy.load_file(str(path))
    assert sorted(theirs) == sorted(tensors)
    for name, a in tensors.items():
        assert same_bits(theirs[name], a), name
    with safetensors.safe_open(str(path), framework="np") as f:
        assert f.metadata() == {"format": "np", "note": "x\ny"}
    as_torch = safetensors.torch.load_file(str(path))
    for name, a in tensors.items():
        assert as_torch[name].numpy().tobytes() == a.tobytes(), name


def test_strided_and_torch_inputs_are_written_in_logical_order(tmp_path, rng):
    base = random_bits(rng, np.float32, (4, 6, 8))
    t = torch.from_numpy(random_bits(rng, np.float64, (5, 3)))
    inputs = {
        "transposed": base.transpose(1, 0, 2),  # strided, last dim contiguous
        "every_other_column": base[:, :, ::2],  # strided last dim
        "reversed": base[::-1],  # negative strides (read_array copies)
        "broadcast": np.broadcast_to(base[0, 0], (3, 8)),  # zero strides
        "torch_t": t.t(),  # non-contiguous torch tensor
        "torch_grad": torch.ones(2, 2, requires_grad=True),
    }
    path = tmp_path / "strided.safetensors"
    ma.save_safetensors(path, inputs)
    theirs = safetensors.numpy.load_file(str(path))
    ours = ma.load_safetensors(path)
    for name, x in inputs.items():
        expected = np.ascontiguousarray(x.detach().numpy() if torch.is_tensor(x) else x)
        assert same_bits(theirs[name], expected), name
        assert same_bits(ours[name], expected), name


# ---- byte layout ----------------------------------------------------------------


@pytest.mark.parametrize("metadata", [None, {"format": "pt"}], ids=["no_metadata", "one_key"])
def test_bytes_equal_the_reference(tmp_path, tensors, metadata):
    ours, theirs = tmp_path / "ours.safetensors", tmp_path / "theirs.safetensors"
    ma.save_safetensors(ours, tensors, metadata)
    safetensors.numpy.save_file(tensors, str(theirs), metadata=metadata)
    assert ours.read_bytes() == theirs.read_bytes()
    torch_file = tmp_path / "torch.safetensors"
    safetensors.torch.save_file(
        {k: torch.from_numpy(v) for k, v in tensors.items()}, str(torch_file), metadata=metadata
    )
    assert ours.read_bytes() == torch_file.read_bytes()


def test_with_several_metadata_keys_only_their_order_differs(tmp_path, tensors):
    # The reference writes __metadata__ from a Rust HashMap (random order per
    # process); maskattn writes it sorted.
    metadata = {f"key{i}": f"value{i}" for i in range(6)}
    ours, theirs = tmp_path / "ours.safetensors", tmp_path / "theirs.safetensors"
    ma.save_safetensors(ours, tensors, metadata)
    safetensors.numpy.save_file(tensors, str(theirs), metadata=metadata)
    our_header, our_data = split(ours.read_bytes())
    their_header, their_data = split(theirs.read_bytes())
    assert our_header == their_header
    assert list(our_header["__metadata__"]) == sorted(metadata)
    assert our_data == their_data
    assert len(ours.read_bytes()) == len(theirs.read_bytes())


def test_layout_is_aligned(tmp_path, tensors):
    path = tmp_path / "aligned.safetensors"
    ma.save_safetensors(path, tensors)
    raw = path.read_bytes()
    (n,) = struct.unpack("<Q", raw[:8])
    assert n % 8 == 0 and raw[8 + n - 1 : 8 + n] in (b" ", b"}")
    header, _ = split(raw)
    for name, entry in header.items():
        begin, _ = entry["data_offsets"]
        assert begin % tensors[name].dtype.itemsize == 0, name


# ---- loaded arrays: zero-copy views that keep the file mapped ----------------


def test_loaded_arrays_are_read_only_views_that_outlive_the_dict(tmp_path, rng):
    a = random_bits(rng, np.float32, (64, 64))
    path = tmp_path / "view.safetensors"
    ma.save_safetensors(path, {"a": a})
    x = ma.load_safetensors(path)["a"]
    gc.collect()
    assert not x.flags.writeable and not x.flags.owndata
    with pytest.raises(ValueError):
        x[0, 0] = 1.0
    with pytest.raises(ValueError):
        x.setflags(write=True)
    # Saving over the file renames a new one into place: the mapped old one stays.
    ma.save_safetensors(path, {"a": np.zeros_like(a)})
    assert same_bits(x, a)
    assert not ma.load_safetensors(path)["a"].any()


@pytest.mark.parametrize("kind", ["str", "pathlib", "bytes"])
def test_paths_may_be_str_pathlike_or_bytes(tmp_path, kind):
    p = tmp_path / "p.safetensors"
    path = {"str": str(p), "pathlib": p, "bytes": bytes(p)}[kind]
    ma.save_safetensors(path, {"x": np.arange(3, dtype=np.int32)})
    assert ma.load_safetensors(path)["x"].tolist() == [0, 1, 2]


# ---- bad input --------------------------------------------------------------------


def raw_file(header: str, data: bytes = b"") -> bytes:
    h = header.encode()
    return struct.pack("<Q", len(h)) + h + data


BAD_FILES = {
    "too_short": (b"\x01\x00", None),
    "length_past_end": (struct.pack("<Q", 1000) + b"{}", None),
    "not_json": (raw_file('{"a":'), None),
    "not_an_object": (raw_file("[1]"), None),
    "no_dtype": (raw_file('{"a":{"shape":[1],"data_offsets":[0,4]}}', b"\0" * 4), "a"),
    "negative_shape": (
        raw_file('{"a":{"dtype":"F32","shape":[-1],"data_offsets":[0,4]}}', b"\0" * 4),
        "a",
    ),
    "offsets_past_data": (
        raw_file('{"a":{"dtype":"F32","shape":[4],"data_offsets":[0,16]}}', b"\0" * 4),
        "a",
    ),
    "wrong_byte_length": (
        raw_file('{"a":{"dtype":"F32","shape":[2],"data_offsets":[0,4]}}', b"\0" * 4),
        "a",
    ),
    "overlap": (
        raw_file(
            '{"a":{"dtype":"F32","shape":[1],"data_offsets":[0,4]},'
            '"b":{"dtype":"F32","shape":[1],"data_offsets":[2,6]}}',
            b"\0" * 8,
        ),
        "b",
    ),
    "duplicate_name": (
        raw_file(
            '{"a":{"dtype":"U8","shape":[1],"data_offsets":[0,1]},'
            '"a":{"dtype":"U8","shape":[1],"data_offsets":[0,1]}}',
            b"\0",
        ),
        None,
    ),
    "metadata_not_str": (raw_file('{"__metadata__":{"k":1}}'), None),
    "unknown_dtype": (
        raw_file('{"a":{"dtype":"Q8","shape":[1],"data_offsets":[0,1]}}', b"\0"),
        "a",
    ),
    "bool_not_0_or_1": (
        raw_file('{"a":{"dtype":"BOOL","shape":[1],"data_offsets":[0,1]}}', b"\x07"),
        "a",
    ),
}


@pytest.mark.parametrize("case", list(BAD_FILES))
def test_bad_files_raise_value_error_naming_the_file(tmp_path, case):
    raw, tensor = BAD_FILES[case]
    path = tmp_path / f"{case}.safetensors"
    path.write_bytes(raw)
    for read in (ma.load_safetensors, ma.safetensors_metadata):
        with pytest.raises(ValueError) as e:
            read(path)
        assert f'safetensors file "{path}"' in str(e.value)
        if tensor is not None:
            assert f'tensor "{tensor}"' in str(e.value)


def test_the_reference_rejects_the_same_bad_files(tmp_path):
    # Except "bool_not_0_or_1" (it reads 7 as True): maskattn refuses a byte
    # C++ cannot hold in a bool.
    accepted = []
    for case, (raw, _) in BAD_FILES.items():
        try:
            safetensors.numpy.load(raw)
            accepted.append(case)
        except Exception:  # noqa: BLE001 -- SafetensorError or the dtype's KeyError
            pass
    assert accepted == ["duplicate_name", "bool_not_0_or_1"]


def test_a_path_that_is_not_utf8_works_and_errors_stay_text(tmp_path):
    path = bytes(tmp_path) + b"/\xff.safetensors"
    with pytest.raises(ValueError, match="No such file"):
        ma.load_safetensors(path)
    ma.save_safetensors(path, {"a": np.arange(2.0)})
    assert ma.load_safetensors(path)["a"].tolist() == [0.0, 1.0]


def test_missing_file_names_it(tmp_path):
    path = tmp_path / "missing.safetensors"
    with pytest.raises(ValueError, match="No such file") as e:
        ma.load_safetensors(path)
    assert str(path) in str(e.value)


def test_bad_save_arguments(tmp_path):
    path = tmp_path / "s.safetensors"
    with pytest.raises(ValueError, match=r'tensors\["h"\].*float16'):
        ma.save_safetensors(path, {"h": np.zeros(2, np.float16)})
    with pytest.raises(ValueError, match=r'tensors\["h"\].*bfloat16'):
        ma.save_safetensors(path, {"h": torch.zeros(2, dtype=torch.bfloat16)})
    with pytest.raises(ValueError, match=r'tensor "__metadata__"'):
        ma.save_safetensors(path, {"__metadata__": np.zeros(2)})
    with pytest.raises(ValueError, match=r'tensors\["n"\]'):
        ma.save_safetensors(path, {"n": None})
    with pytest.raises(TypeError, match="str keys"):
        ma.save_safetensors(path, {1: np.zeros(2)})
    with pytest.raises(TypeError, match="metadata"):
        ma.save_safetensors(path, {"a": np.zeros(2)}, {"k": 1})
    with pytest.raises(TypeError):
        ma.save_safetensors(path, [np.zeros(2)])
    nowhere = tmp_path / "no" / "dir.safetensors"
    with pytest.raises(ValueError, match="a file that can be written") as e:
        ma.save_safetensors(nowhere, {"a": np.zeros(2)})
    assert str(nowhere) in str(e.value)
    assert list(tmp_path.iterdir()) == []
