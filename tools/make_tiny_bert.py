#!/usr/bin/env python3
"""Write tests/data/tiny_bert/: a tiny sentence-transformers model with random
weights, and tests/data/tiny_bert_golden.safetensors: what transformers and
sentence-transformers compute with it. The C++ tests (tests/nn/bert_test.cpp,
tests/models/sentence_encoder_test.cpp) load both, so BertModel, the model
folder reader and the sentence pipeline are checked against the real libraries
without Python at test time.

The model: BertModel (vocab 48, hidden 16, 2 layers, 4 heads, intermediate 32,
16 positions, 2 token types, gelu, pooler) with every parameter random, a
WordPiece vocabulary of a few words, mean pooling and Normalize — the layout of
all-MiniLM-L6-v2.

Golden tensors (int64 ids, float32 values):
  padded.input_ids, padded.attention_mask, padded.token_type_ids   (3, 7)
  padded.last_hidden_state (3, 7, 16), padded.pooler_output (3, 16)
      BertModel on a right-padded batch of 7, 5 and 2 tokens (padded
      positions' outputs included: transformers computes them too)
  packed.input_ids, packed.position_ids, packed.token_type_ids (1, 14),
  packed.document_ids (14)
  packed.last_hidden_state (1, 14, 16)
      the same three sequences in one row, under a block-diagonal 4-D mask
  sentences.embeddings (5, 16)
      SentenceTransformer.encode of the sentences in __metadata__
      ("sentences", joined by "\\n")

Regenerate (byte-identical for the same torch/transformers versions):
    .venv/bin/python tools/make_tiny_bert.py
"""

from __future__ import annotations

import json
import pathlib
import shutil
import tempfile

import torch
from safetensors.torch import save_file
from transformers import BertConfig, BertModel

REPO = pathlib.Path(__file__).resolve().parent.parent
MODEL_DIR = REPO / "tests" / "data" / "tiny_bert"
GOLDEN_PATH = REPO / "tests" / "data" / "tiny_bert_golden.safetensors"
SEED = 20261123

VOCAB = ["[PAD]", "[UNK]", "[CLS]", "[SEP]", "[MASK]",
         ".", ",", "!", "?", "'",
         "the", "a", "cat", "dog", "sat", "ran", "on", "mat", "is", "was",
         "run", "sit", "big", "small", "red", "blue", "and", "of", "to", "in",
         "##s", "##ing", "##ed", "##ly", "##er", "c", "d", "e", "m", "r",
         "##a", "##t", "##o", "##g", "é", "ß", "日", "本"]

SENTENCES = [
    "The cat sat on the mat.",
    "A big red dog ran!",
    "Cats running, dogs sitting.",
    "The small blue cat is on the big red mat and the dog was in it?",
    "Unknown wörds map to [UNK]; 日本",
]


def _randomize(model: torch.nn.Module) -> None:
    """Every parameter random (biases and LayerNorm weights too)."""
    with torch.no_grad():
        for name, p in model.named_parameters():
            if p.dim() == 1:
                if "LayerNorm" in name and name.endswith("weight"):
                    p.uniform_(0.5, 1.5)
                else:
                    p.uniform_(-0.5, 0.5)
            else:
                p.normal_(0.0, 0.3)


def write_model(folder: pathlib.Path) -> BertModel:
    config = BertConfig(vocab_size=len(VOCAB), hidden_size=16, num_hidden_layers=2,
                        num_attention_heads=4, intermediate_size=32,
                        max_position_embeddings=16, type_vocab_size=2, hidden_act="gelu",
                        layer_norm_eps=1e-12)
    model = BertModel(config)
    _randomize(model)
    model.eval()
    if folder.exists():
        shutil.rmtree(folder)
    (folder / "1_Pooling").mkdir(parents=True)
    config.to_json_file(folder / "config.json")
    save_file({k: v.contiguous() for k, v in model.state_dict().items()},
              folder / "model.safetensors", metadata={"format": "pt"})
    (folder / "vocab.txt").write_text("".join(t + "\n" for t in VOCAB), encoding="utf-8")
    (folder / "tokenizer_config.json").write_text(json.dumps(
        {"do_lower_case": True, "tokenize_chinese_chars": True, "strip_accents": None,
         "tokenizer_class": "BertTokenizer", "model_max_length": 16}, indent=2) + "\n")
    (folder / "sentence_bert_config.json").write_text(
        json.dumps({"max_seq_length": 12, "do_lower_case": False}, indent=2) + "\n")
    (folder / "modules.json").write_text(json.dumps([
        {"idx": 0, "name": "0", "path": "", "type": "sentence_transformers.models.Transformer"},
        {"idx": 1, "name": "1", "path": "1_Pooling",
         "type": "sentence_transformers.models.Pooling"},
        {"idx": 2, "name": "2", "path": "2_Normalize",
         "type": "sentence_transformers.models.Normalize"}], indent=2) + "\n")
    (folder / "1_Pooling" / "config.json").write_text(json.dumps(
        {"word_embedding_dimension": 16, "pooling_mode_cls_token": False,
         "pooling_mode_mean_tokens": True, "pooling_mode_max_tokens": False,
         "pooling_mode_mean_sqrt_len_tokens": False}, indent=2) + "\n")
    return model


def golden(model: BertModel, folder: pathlib.Path) -> dict[str, torch.Tensor]:
    lengths = [7, 5, 2]
    ids = torch.randint(5, len(VOCAB), (len(lengths), max(lengths)))
    ids[:, 0] = VOCAB.index("[CLS]")
    mask = (torch.arange(max(lengths))[None, :] < torch.tensor(lengths)[:, None]).long()
    for row, n in enumerate(lengths):
        ids[row, n - 1] = VOCAB.index("[SEP]")
        ids[row, n:] = VOCAB.index("[PAD]")
    types = torch.zeros_like(ids)
    types[0, 4:7] = 1  # a second segment in the first sequence
    with torch.no_grad():
        padded = model(ids, attention_mask=mask, token_type_ids=types)

    # The same sequences packed: one row, positions restarting, a block-diagonal mask.
    packed_ids = torch.cat([ids[r, :n] for r, n in enumerate(lengths)])[None]
    packed_types = torch.cat([types[r, :n] for r, n in enumerate(lengths)])[None]
    positions = torch.cat([torch.arange(n) for n in lengths])[None]
    documents = torch.cat([torch.full((n,), r) for r, n in enumerate(lengths)])
    block = (documents[:, None] == documents[None, :])[None, None]
    with torch.no_grad():
        packed = model(packed_ids, attention_mask=block, position_ids=positions,
                       token_type_ids=packed_types)

    # sentence-transformers reads the folder as it would any model.
    from sentence_transformers import SentenceTransformer
    with tempfile.TemporaryDirectory() as tmp:
        st_dir = pathlib.Path(tmp) / "model"
        shutil.copytree(folder, st_dir)
        st = SentenceTransformer(str(st_dir), device="cpu")
        embeddings = st.encode(SENTENCES, convert_to_tensor=True, batch_size=2)

    return {
        "padded.input_ids": ids, "padded.attention_mask": mask, "padded.token_type_ids": types,
        "padded.last_hidden_state": padded.last_hidden_state,
        "padded.pooler_output": padded.pooler_output,
        "packed.input_ids": packed_ids, "packed.position_ids": positions,
        "packed.token_type_ids": packed_types, "packed.document_ids": documents,
        "packed.last_hidden_state": packed.last_hidden_state,
        "sentences.embeddings": embeddings.float(),
    }


def main() -> None:
    torch.manual_seed(SEED)
    model = write_model(MODEL_DIR)
    tensors = golden(model, MODEL_DIR)
    for name, t in tensors.items():
        if t.is_floating_point() and not torch.isfinite(t).all():
            raise RuntimeError(f"{name} is not finite")
    import sentence_transformers
    import transformers
    save_file({k: v.contiguous() for k, v in tensors.items()}, GOLDEN_PATH, metadata={
        "sentences": "\n".join(SENTENCES), "generator": "tools/make_tiny_bert.py",
        "seed": str(SEED), "torch_version": torch.__version__,
        "transformers_version": transformers.__version__,
        "sentence_transformers_version": sentence_transformers.__version__})
    print(f"wrote {MODEL_DIR} and {GOLDEN_PATH} ({GOLDEN_PATH.stat().st_size} bytes)")


if __name__ == "__main__":
    main()
