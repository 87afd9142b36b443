"""Type stubs of the maskattn C++ extension. The runtime docstrings (help())
say the same at more length; tests/test_stubs.py keeps the two in step."""

from collections.abc import Callable, Sequence
from typing import Literal, overload

import numpy as np
import numpy.typing as npt

# numpy arrays, CPU torch tensors, or nested sequences of numbers.
ArrayLike = npt.ArrayLike
Align = Literal["top_left", "bottom_right"]

__version__: str

class Mask:
    """Which (batch, head, query, key) pairs may attend, plus an optional additive
    bias. Combine with ``&``; ``Mask()`` allows every pair."""

    def __init__(self) -> None: ...
    def __and__(self, other: Mask, /) -> Mask: ...
    @property
    def allows_all(self) -> bool:
        """True when the mask has no parts."""
    def describe(self) -> str:
        """The mask as text, e.g. ``causal(top_left) & key_lengths(2)``."""
    def materialize(
        self, batch: int, heads: int, q_len: int, k_len: int
    ) -> npt.NDArray[np.float32]:
        """Dense additive mask (batch, heads, q_len, k_len): 0 or the bias where
        allowed, -inf where masked."""

def causal(align: Align = "top_left") -> Mask:
    """Look-ahead mask: j <= i + offset (offset k_len - q_len for bottom_right)."""

def sliding_window(left: int | None, right: int | None = 0, align: Align = "top_left") -> Mask:
    """Band i' - left <= j <= i' + right; None = no limit."""

def prefix_lm(n: int, align: Align = "top_left") -> Mask:
    """The first n keys visible to every query, the rest causally."""

def documents(ids: ArrayLike, key_ids: ArrayLike | None = None) -> Mask:
    """Block diagonal: equal document id = may attend. ids (L,) or (B, L) ints."""

def key_lengths(lengths: ArrayLike) -> Mask:
    """Key j of batch b visible iff j < lengths[b]."""

def query_lengths(lengths: ArrayLike) -> Mask:
    """Query i of batch b attends iff i < lengths[b]; other rows are empty rows."""

def keep(array: ArrayLike, *, key_padding: bool = False) -> Mask:
    """Dense bool mask, True = may attend (PyTorch broadcasting)."""

def block(array: ArrayLike, *, key_padding: bool = False) -> Mask:
    """Dense bool mask, True = masked (PyTorch broadcasting)."""

def bias(array: ArrayLike, *, key_padding: bool = False) -> Mask:
    """Dense float additive mask, -inf = masked (PyTorch broadcasting)."""

def alibi(slopes: ArrayLike, align: Align = "top_left") -> Mask:
    """ALiBi bias -slopes[h] * |i + offset - j|; masks nothing."""

def alibi_slopes(num_heads: int) -> npt.NDArray[np.float32]:
    """The ALiBi paper's slopes for num_heads heads."""

def predicate(fn: Callable[[int, int, int, int], bool], name: str = "predicate") -> Mask:
    """Any rule fn(b, h, i, j) -> bool (True = may attend), evaluated per element."""

def from_torch_mha_mask(
    attn_mask: ArrayLike | None = None,
    key_padding_mask: ArrayLike | None = None,
    num_heads: int | None = None,
) -> Mask:
    """torch.nn.MultiheadAttention's masks: bool True = masked, or float additive."""

def from_sdpa_mask(attn_mask: ArrayLike | None = None, is_causal: bool = False) -> Mask:
    """F.scaled_dot_product_attention's mask: bool True = may attend, or float additive."""

def from_hf_attention_mask(attention_mask: ArrayLike | None) -> Mask:
    """Hugging Face attention_mask: (B, S) 1 = attend, or the 4-D additive form."""

def from_keras_mask(attention_mask: ArrayLike | None = None, use_causal_mask: bool = False) -> Mask:
    """Keras MultiHeadAttention: (B, T, S), 1 = attend."""

def from_onnx_attention_mask(attn_mask: ArrayLike | None = None, is_causal: bool = False) -> Mask:
    """ONNX Attention (opset 23): bool True = attend, or float additive; is_causal as well."""

def subsequent_mask(size: int) -> npt.NDArray[np.bool_]:
    """bool (1, size, size), True on and below the diagonal."""

@overload
def attention(
    q: ArrayLike,
    k: ArrayLike,
    v: ArrayLike,
    mask: Mask | None = None,
    *,
    scale: float | None = None,
    dropout_p: float = 0.0,
    seed: int = 0,
    head_mask: ArrayLike | None = None,
    softcap: float = 0.0,
    empty_rows: Literal["zero", "nan", "error"] = "zero",
    need_weights: Literal[False] = False,
    return_lse: Literal[False] = False,
    backend: Literal["auto", "reference"] = "auto",
) -> npt.NDArray[np.float32]: ...
@overload
def attention(
    q: ArrayLike,
    k: ArrayLike,
    v: ArrayLike,
    mask: Mask | None = None,
    *,
    scale: float | None = None,
    dropout_p: float = 0.0,
    seed: int = 0,
    head_mask: ArrayLike | None = None,
    softcap: float = 0.0,
    empty_rows: Literal["zero", "nan", "error"] = "zero",
    need_weights: bool = False,
    return_lse: bool = False,
    backend: Literal["auto", "reference"] = "auto",
) -> npt.NDArray[np.float32] | tuple[npt.NDArray[np.float32], ...]:
    """Scaled dot-product attention with a mask. q (B, Hq, Lq, D), k (B, Hkv, Lk, D),
    v (B, Hkv, Lk, Dv), float32. Returns out (B, Hq, Lq, Dv), or (out, weights),
    (out, lse), (out, weights, lse) with need_weights / return_lse."""

def sinusoidal_encoding(
    length: int,
    dim: int,
    base: float = 10000.0,
    layout: Literal["interleaved", "concatenated"] = "interleaved",
) -> npt.NDArray[np.float32]:
    """Sinusoidal positional encoding (length, dim)."""

def mlm_mask(
    token_ids: ArrayLike,
    *,
    vocab_size: int,
    mask_token_id: int,
    special_token_ids: Sequence[int] = (),
    mlm_probability: float = 0.15,
    mask_replace_prob: float = 0.8,
    random_replace_prob: float = 0.1,
    seed: int = 0,
    word_ids: ArrayLike | None = None,
) -> tuple[npt.NDArray[np.int64], npt.NDArray[np.int64]]:
    """BERT masked-LM masking: (input_ids, labels), labels -100 where not chosen."""
