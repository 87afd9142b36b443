#!/usr/bin/env python3
"""Export a torch.nn model's state_dict to safetensors, for maskattn's modules.

maskattn's modules (include/maskattn/nn/) name their parameters as torch does,
so a file written here loads in C++ with

    auto file = maskattn::SafetensorsFile::open("model.safetensors");
    layer.load_state_dict(file.views());

and gives torch's numbers. Floating-point tensors are written as float32 (the
modules' parameter type), the rest as they are; a name prefix lets one file
hold several modules.

From Python (any nn.Module):

    from export_state_dict import export
    export(model, "model.safetensors", metadata={"d_model": 512})

From the command line (run with the project's .venv/bin/python):

    # one of torch.nn's Transformer modules, built from arguments (torch's
    # default initialisation from --seed; the configuration goes into the
    # file's __metadata__ so the C++ side can build the same module)
    export_state_dict.py build encoder-layer out.safetensors --d-model 512 --nhead 8

    # a module of your own: MODULE:ATTRIBUTE, an nn.Module or a callable
    # without arguments returning one
    export_state_dict.py import mypackage.models:make_model out.safetensors

    # the golden file of the C++ tests (tests/nn/golden_test.cpp)
    export_state_dict.py golden [tests/data/nn_golden.safetensors]

The golden file is deterministic for a given torch version: regenerate it with
`.venv/bin/python tools/export_state_dict.py golden` after changing golden()
(and commit the file; tests/data/README.md lists what it holds).
"""

from __future__ import annotations

import argparse
import importlib
import json
import pathlib
import sys
import warnings
from typing import Callable, Mapping

import torch
from safetensors.torch import save, save_file
from torch import nn

REPO = pathlib.Path(__file__).resolve().parent.parent
GOLDEN_PATH = REPO / "tests" / "data" / "nn_golden.safetensors"
GOLDEN_SEED = 20240611


def state_tensors(module: nn.Module, prefix: str = "") -> dict[str, torch.Tensor]:
    """module.state_dict() as contiguous CPU tensors named prefix + torch's name.

    Floating-point tensors become float32. Every tensor is a copy, so tied
    weights (which safetensors refuses to write twice) are written as two.
    """
    out = {}
    for name, t in module.state_dict().items():
        t = t.detach().to("cpu")
        if t.is_floating_point():
            t = t.to(torch.float32)
        out[prefix + name] = t.contiguous().clone()
    return out


def metadata_strings(metadata: Mapping[str, object]) -> dict[str, str]:
    """Values as the strings __metadata__ holds; bools as "true" / "false"."""
    return {str(k): str(v).lower() if isinstance(v, bool) else str(v)
            for k, v in metadata.items()}


def export(module: nn.Module, path: str | pathlib.Path,
           metadata: Mapping[str, object] | None = None, prefix: str = "") -> None:
    """Writes module.state_dict() to `path` as safetensors.

    metadata: written to __metadata__ as strings (metadata_strings), after
    "format": "pt" and "module": the module's class name. prefix: put before
    every tensor name.
    """
    meta = {"format": "pt", "module": type(module).__name__}
    meta.update(metadata_strings(metadata or {}))
    save_file(state_tensors(module, prefix), str(path), metadata=meta)


# ---- build: torch.nn's Transformer modules from arguments -------------------

def _layer_kwargs(a: argparse.Namespace) -> dict[str, object]:
    return dict(dim_feedforward=a.dim_feedforward, dropout=a.dropout, activation=a.activation,
                layer_norm_eps=a.layer_norm_eps, batch_first=a.batch_first,
                norm_first=a.norm_first, bias=not a.no_bias)


def _final_norm(a: argparse.Namespace) -> nn.LayerNorm:
    return nn.LayerNorm(a.d_model, eps=a.layer_norm_eps, bias=not a.no_bias)


def _transformer(a: argparse.Namespace) -> nn.Transformer:
    # nn.Transformer builds its encoder with the nested-tensor fast path on and
    # warns that a sequence-first layer cannot use it; nothing to act on here.
    with warnings.catch_warnings():
        warnings.filterwarnings("ignore", message="enable_nested_tensor is True")
        return nn.Transformer(a.d_model, a.nhead, a.num_layers, a.num_layers, **_layer_kwargs(a))


# Stacks (encoder, decoder) get a final LayerNorm, as nn.Transformer's do.
BUILDERS: dict[str, Callable[[argparse.Namespace], nn.Module]] = {
    "multihead-attention": lambda a: nn.MultiheadAttention(
        a.d_model, a.nhead, dropout=a.dropout, bias=not a.no_bias, add_bias_kv=a.add_bias_kv,
        add_zero_attn=a.add_zero_attn, kdim=a.kdim, vdim=a.vdim, batch_first=a.batch_first),
    "encoder-layer": lambda a: nn.TransformerEncoderLayer(a.d_model, a.nhead, **_layer_kwargs(a)),
    "decoder-layer": lambda a: nn.TransformerDecoderLayer(a.d_model, a.nhead, **_layer_kwargs(a)),
    "encoder": lambda a: nn.TransformerEncoder(
        nn.TransformerEncoderLayer(a.d_model, a.nhead, **_layer_kwargs(a)), a.num_layers,
        norm=_final_norm(a), enable_nested_tensor=False),
    "decoder": lambda a: nn.TransformerDecoder(
        nn.TransformerDecoderLayer(a.d_model, a.nhead, **_layer_kwargs(a)), a.num_layers,
        norm=_final_norm(a)),
    "transformer": _transformer,
}


def _build_metadata(a: argparse.Namespace) -> dict[str, object]:
    keys = ["d_model", "nhead", "seed"]
    if a.kind == "multihead-attention":
        keys += ["dropout", "add_bias_kv", "add_zero_attn", "kdim", "vdim", "batch_first"]
    else:
        keys += ["dim_feedforward", "dropout", "activation", "layer_norm_eps", "batch_first",
                 "norm_first"]
        if a.kind in ("encoder", "decoder", "transformer"):
            keys.append("num_layers")
    meta = {k: getattr(a, k) for k in keys if getattr(a, k) is not None}
    meta["bias"] = not a.no_bias
    return meta


# ---- golden: the file the C++ tests compare with --------------------------------

def _randomize(module: nn.Module) -> None:
    """Every parameter random, biases and LayerNorm weights included.

    torch starts biases at 0 and LayerNorm weights at 1, which would hide a
    bias added twice or a weight not applied; matrices keep torch's (random)
    initialisation, which keeps activations of order 1.
    """
    with torch.no_grad():
        for name, p in module.named_parameters():
            if p.dim() != 1:
                continue
            if "norm" in name and name.endswith("weight"):
                p.uniform_(0.5, 1.5)
            else:
                p.uniform_(-0.5, 0.5)


def _padding_mask(lengths: list[int], size: int) -> torch.Tensor:
    """(N, size) bool, True at padding: torch's key_padding_mask convention."""
    return torch.arange(size)[None, :] >= torch.tensor(lengths)[:, None]


def golden() -> tuple[dict[str, torch.Tensor], dict[str, str]]:
    """The golden tensors and metadata (see tests/data/README.md).

    Three modules in eval mode with random weights, each under a prefix
    ("encoder.", "decoder_layer.", "mha."), their inputs and masks under
    "input.<module>.", torch's outputs under "output.<module>.".
    """
    torch.manual_seed(GOLDEN_SEED)
    tensors: dict[str, torch.Tensor] = {}
    meta: dict[str, object] = {}

    # A post-norm relu encoder with a final norm on a padded batch:
    # src (L, N, E), sequences of 7, 5 and 2 tokens.
    enc = dict(num_layers=2, d_model=16, nhead=4, dim_feedforward=32, activation="relu",
               norm_first=False, batch_first=False, layer_norm_eps=1e-5, final_norm=True)
    encoder = nn.TransformerEncoder(
        nn.TransformerEncoderLayer(enc["d_model"], enc["nhead"], enc["dim_feedforward"],
                                   activation=enc["activation"], norm_first=enc["norm_first"],
                                   batch_first=enc["batch_first"],
                                   layer_norm_eps=enc["layer_norm_eps"]),
        enc["num_layers"], norm=nn.LayerNorm(enc["d_model"], eps=enc["layer_norm_eps"]),
        enable_nested_tensor=False)  # the nested-tensor path would zero padded outputs
    lengths = [7, 5, 2]
    src = torch.randn(max(lengths), len(lengths), enc["d_model"])
    src_kpm = _padding_mask(lengths, max(lengths))
    _randomize(encoder)
    encoder.eval()
    with torch.no_grad():
        enc_out = encoder(src, src_key_padding_mask=src_kpm)
    tensors |= state_tensors(encoder, "encoder.")
    tensors |= {"input.encoder.src": src, "input.encoder.src_key_padding_mask": src_kpm,
                "output.encoder.out": enc_out}
    meta |= {f"encoder.{k}": v for k, v in enc.items()}
    meta["encoder.lengths"] = ",".join(map(str, lengths))

    # A pre-norm gelu decoder layer, batch first: tgt (N, T, E) under the
    # look-ahead mask (float, -inf above the diagonal), memory (N, S, E) of
    # 6 and 4 tokens.
    dec = dict(d_model=16, nhead=4, dim_feedforward=32, activation="gelu", norm_first=True,
               batch_first=True, layer_norm_eps=1e-5)
    decoder_layer = nn.TransformerDecoderLayer(
        dec["d_model"], dec["nhead"], dec["dim_feedforward"], activation=dec["activation"],
        norm_first=dec["norm_first"], batch_first=dec["batch_first"],
        layer_norm_eps=dec["layer_norm_eps"])
    mem_lengths, tgt_len = [6, 4], 5
    tgt = torch.randn(len(mem_lengths), tgt_len, dec["d_model"])
    memory = torch.randn(len(mem_lengths), max(mem_lengths), dec["d_model"])
    tgt_mask = nn.Transformer.generate_square_subsequent_mask(tgt_len)
    mem_kpm = _padding_mask(mem_lengths, max(mem_lengths))
    _randomize(decoder_layer)
    decoder_layer.eval()
    with torch.no_grad():
        dec_out = decoder_layer(tgt, memory, tgt_mask=tgt_mask, memory_key_padding_mask=mem_kpm)
    tensors |= state_tensors(decoder_layer, "decoder_layer.")
    tensors |= {"input.decoder_layer.tgt": tgt, "input.decoder_layer.memory": memory,
                "input.decoder_layer.tgt_mask": tgt_mask,
                "input.decoder_layer.memory_key_padding_mask": mem_kpm,
                "output.decoder_layer.out": dec_out}
    meta |= {f"decoder_layer.{k}": v for k, v in dec.items()}

    # Cross-attention with kdim, vdim != embed_dim and add_bias_kv, batch
    # first, per-head weights. attn_mask (L, S) masks every real key of query
    # 0, which then attends to bias_k alone (torch never masks the added key).
    att = dict(embed_dim=8, num_heads=2, kdim=5, vdim=3, add_bias_kv=True, add_zero_attn=False,
               batch_first=True, average_attn_weights=False)
    mha = nn.MultiheadAttention(att["embed_dim"], att["num_heads"], kdim=att["kdim"],
                                vdim=att["vdim"], add_bias_kv=att["add_bias_kv"],
                                add_zero_attn=att["add_zero_attn"],
                                batch_first=att["batch_first"])
    key_lengths, q_len = [4, 2], 3
    query = torch.randn(len(key_lengths), q_len, att["embed_dim"])
    key = torch.randn(len(key_lengths), max(key_lengths), att["kdim"])
    value = torch.randn(len(key_lengths), max(key_lengths), att["vdim"])
    attn_mask = torch.tensor([[True, True, True, True],
                              [False, True, False, False],
                              [False, False, False, True]])
    kpm = _padding_mask(key_lengths, max(key_lengths))
    _randomize(mha)
    mha.eval()
    with torch.no_grad():
        mha_out, mha_weights = mha(query, key, value, key_padding_mask=kpm, attn_mask=attn_mask,
                                   need_weights=True,
                                   average_attn_weights=att["average_attn_weights"])
    tensors |= state_tensors(mha, "mha.")
    tensors |= {"input.mha.query": query, "input.mha.key": key, "input.mha.value": value,
                "input.mha.attn_mask": attn_mask, "input.mha.key_padding_mask": kpm,
                "output.mha.attn_output": mha_out, "output.mha.attn_weights": mha_weights}
    meta |= {f"mha.{k}": v for k, v in att.items()}

    meta |= {"generator": "tools/export_state_dict.py golden", "seed": GOLDEN_SEED,
             "torch_version": torch.__version__}
    for name, t in tensors.items():
        if t.is_floating_point() and name.startswith("output.") and not torch.isfinite(t).all():
            raise RuntimeError(f"golden output {name} is not finite")
    return {k: v.contiguous() for k, v in tensors.items()}, metadata_strings(meta)


def write_golden(path: str | pathlib.Path = GOLDEN_PATH) -> None:
    """Writes golden() with its __metadata__ in sorted order.

    The safetensors package writes metadata in a hash map's (random) order;
    sorting it makes the file byte-identical from run to run, so regenerating
    it without a change leaves the committed file as it is.
    """
    tensors, meta = golden()
    raw = save(tensors, metadata=meta)
    n = int.from_bytes(raw[:8], "little")
    header = json.loads(raw[8:8 + n])
    header["__metadata__"] = dict(sorted(header["__metadata__"].items()))
    text = json.dumps(header, separators=(",", ":"), ensure_ascii=False).encode()
    if len(text) > n:  # the same JSON reordered is never longer; be sure
        raise RuntimeError("reordered safetensors header does not fit")
    pathlib.Path(path).write_bytes(raw[:8] + text + b" " * (n - len(text)) + raw[8 + n:])


# ---- command line ------------------------------------------------------------------

def _load_attribute(spec: str) -> nn.Module:
    module_name, sep, attribute = spec.partition(":")
    if not sep or not module_name or not attribute:
        raise SystemExit(f"expected MODULE:ATTRIBUTE, got {spec!r}")
    sys.path.insert(0, ".")  # modules in the working directory, as `python -m` finds them
    obj = importlib.import_module(module_name)
    for part in attribute.split("."):
        obj = getattr(obj, part)
    if not isinstance(obj, nn.Module) and callable(obj):
        obj = obj()
    if not isinstance(obj, nn.Module):
        raise SystemExit(f"{spec} is not a torch.nn.Module, nor a callable returning one")
    return obj


def main(argv: list[str] | None = None) -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    sub = parser.add_subparsers(dest="command", required=True)

    b = sub.add_parser("build", help="build one of torch.nn's Transformer modules and export it")
    b.add_argument("kind", choices=sorted(BUILDERS))
    b.add_argument("output")
    b.add_argument("--d-model", type=int, default=512, help="d_model (embed_dim)")
    b.add_argument("--nhead", type=int, default=8, help="nhead (num_heads)")
    b.add_argument("--num-layers", type=int, default=6)
    b.add_argument("--dim-feedforward", type=int, default=2048)
    b.add_argument("--dropout", type=float, help="default: torch's (0.1; 0 for attention)")
    b.add_argument("--activation", choices=["relu", "gelu"], default="relu")
    b.add_argument("--layer-norm-eps", type=float, default=1e-5)
    b.add_argument("--batch-first", action="store_true")
    b.add_argument("--norm-first", action="store_true")
    b.add_argument("--no-bias", action="store_true", help="bias=False in every Linear and norm")
    b.add_argument("--kdim", type=int, help="multihead-attention only")
    b.add_argument("--vdim", type=int, help="multihead-attention only")
    b.add_argument("--add-bias-kv", action="store_true", help="multihead-attention only")
    b.add_argument("--add-zero-attn", action="store_true", help="multihead-attention only")
    b.add_argument("--seed", type=int, default=0, help="torch.manual_seed before building")

    i = sub.add_parser("import", help="export MODULE:ATTRIBUTE (a module or a factory)")
    i.add_argument("spec", metavar="MODULE:ATTRIBUTE")
    i.add_argument("output")
    i.add_argument("--prefix", default="", help="put before every tensor name")

    g = sub.add_parser("golden", help="write the golden file of the C++ tests")
    g.add_argument("output", nargs="?", default=str(GOLDEN_PATH))

    a = parser.parse_args(argv)
    if a.command == "build":
        if a.dropout is None:
            a.dropout = 0.0 if a.kind == "multihead-attention" else 0.1
        torch.manual_seed(a.seed)
        export(BUILDERS[a.kind](a), a.output, _build_metadata(a))
    elif a.command == "import":
        export(_load_attribute(a.spec), a.output, prefix=a.prefix)
    else:
        write_golden(a.output)
    size = pathlib.Path(a.output).stat().st_size
    print(f"wrote {a.output} ({size} bytes)")


if __name__ == "__main__":
    main()
