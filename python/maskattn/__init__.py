"""maskattn: Transformer attention with masks.

Masks are typed values -- ``causal()``, ``key_lengths(...)``, ``keep`` /
``block`` / ``bias`` and adapters that name the convention they read
(``from_torch_mha_mask``, ``from_sdpa_mask``, ``from_hf_attention_mask``,
``from_keras_mask``, ``from_onnx_attention_mask``) -- combined with ``&`` and
applied once, inside ``attention()``. Arrays go in as numpy arrays or CPU torch
tensors and come out as numpy arrays. Bad input raises ``ValueError`` naming
the argument.

    >>> import numpy as np, maskattn as ma
    >>> q = k = v = np.random.randn(2, 4, 5, 8).astype(np.float32)
    >>> out = ma.attention(q, k, v, ma.causal() & ma.key_lengths([5, 3]))

Pictures of masks, encodings and attention weights: ``maskattn.viz``;
training (``cross_entropy``, ``Gradients``; optimizers, schedules and
checkpoints): ``maskattn.optim``; the copy task's model and trainer:
``Seq2SeqTransformer``, ``CopyTask``, ``Seq2SeqTrainer``.

Does a mask hide what it must? ``check_leaks(mask, causal(), B, H, Lq, Lk)``
perturbs what the expectation hides and reports every query whose output
changes; ``check_model_leaks`` does the same for a whole sequence model.
"""

from ._maskattn import (
    BertModel,
    CopyTask,
    Dropout,
    Embedding,
    FeedForward,
    Gradients,
    LayerNorm,
    Leak,
    LeakReport,
    Linear,
    Mask,
    Module,
    MultiheadAttention,
    PositionalEncoding,
    SentenceEncoder,
    Seq2SeqTrainer,
    Seq2SeqTransformer,
    Transformer,
    TransformerDecoder,
    TransformerDecoderLayer,
    TransformerEncoder,
    TransformerEncoderLayer,
    WordPieceTokenizer,
    __version__,
    alibi,
    alibi_slopes,
    attention,
    attention_backward,
    bias,
    block,
    causal,
    cross_entropy,
    check_leaks,
    check_model_leaks,
    documents,
    from_hf_attention_mask,
    from_keras_mask,
    from_onnx_attention_mask,
    from_sdpa_mask,
    from_torch_mha_mask,
    keep,
    key_lengths,
    load_safetensors,
    mlm_mask,
    predicate,
    prefix_lm,
    query_lengths,
    safetensors_metadata,
    save_safetensors,
    sinusoidal_encoding,
    sliding_window,
    subsequent_mask,
)
from . import optim, viz

__all__ = [
    "BertModel",
    "CopyTask",
    "Dropout",
    "Embedding",
    "FeedForward",
    "Gradients",
    "LayerNorm",
    "Leak",
    "LeakReport",
    "Linear",
    "Mask",
    "Module",
    "MultiheadAttention",
    "PositionalEncoding",
    "SentenceEncoder",
    "Seq2SeqTrainer",
    "Seq2SeqTransformer",
    "Transformer",
    "TransformerDecoder",
    "TransformerDecoderLayer",
    "TransformerEncoder",
    "TransformerEncoderLayer",
    "WordPieceTokenizer",
    "__version__",
    "alibi",
    "alibi_slopes",
    "attention",
    "attention_backward",
    "bias",
    "block",
    "causal",
    "cross_entropy",
    "check_leaks",
    "check_model_leaks",
    "documents",
    "from_hf_attention_mask",
    "from_keras_mask",
    "from_onnx_attention_mask",
    "from_sdpa_mask",
    "from_torch_mha_mask",
    "keep",
    "key_lengths",
    "load_safetensors",
    "mlm_mask",
    "predicate",
    "prefix_lm",
    "query_lengths",
    "safetensors_metadata",
    "save_safetensors",
    "sinusoidal_encoding",
    "sliding_window",
    "subsequent_mask",
]
