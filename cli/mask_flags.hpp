// The mask flags of `maskattn viz mask` and `viz attention`: every mask the
// library can express, from flags (--causal, --lengths, --window, ...) and
// from arrays saved by other libraries (--from-torch-mha mask.npy, ...),
// combined with `&`, and the problem shape (B, H, Lq, Lk) they imply.
#pragma once

#include <CLI/CLI.hpp>
#include <cstdint>
#include <initializer_list>
#include <optional>
#include <string>
#include <string_view>
#include <vector>

#include "maskattn/mask.hpp"

namespace maskattn::cli {

struct MaskFlags {
  std::string causal;  // "" (absent), "top-left" or "bottom-right"
  std::string align = "top-left";
  std::vector<int64_t> lengths, query_lengths;
  std::string window;     // "L" or "L,R"
  std::string documents;  // "0,0,1,1" or "0,0,1;0,1,1" (one row per batch element)
  std::optional<int64_t> prefix;
  // Arrays: FILE.npy, or FILE.safetensors:TENSOR (TENSOR may be left out when
  // the file holds one tensor).
  std::string torch_mha, key_padding_mask, sdpa, hf, keras, onnx, keep, block, bias;
  std::optional<int64_t> batch, heads, q_len, k_len;
  std::string flag_prefix;  // "expect-" for --expect-causal, ...

  // The flag called `name` ("lengths") here: "--lengths", "--expect-lengths".
  std::string flag(std::string_view name) const;
};

// Registers the mask flags on `cmd`; with `shape_flags` also --batch, --heads,
// --q-len, --k-len (commands whose shape comes from elsewhere leave them out).
// `flag_prefix` goes between "--" and each name (a second mask on one
// command: --expect-causal); `group` heads them in the help.
void add_mask_flags(CLI::App& cmd, MaskFlags& flags, bool shape_flags,
                    std::string_view flag_prefix = "", std::string_view group = "");

struct BuiltMask {
  Mask mask;
  MaskShape shape;
  Align diagonal = Align::TopLeft;  // the alignment the mask's parts use
  // The sizes the mask's arrays, lengths and documents imply; 0 where none
  // says (the shape flags and defaults not applied).
  MaskShape implied{0, 0, 0, 0};
};

// The mask of the flags. Its shape: `known` when given (the shape of q and k),
// else the shape flags, else what the arrays, lengths and documents imply
// (batch and heads 1, Lq = Lk = 8 when nothing says). Error naming the flag
// for a malformed value or an unreadable file.
BuiltMask build_mask(const MaskFlags& flags, const std::optional<MaskShape>& known = std::nullopt);

// The shape flags of `flags`, else the largest of the sizes `implied` says,
// else batch and heads 1, Lq = Lk (8 when nothing says). Error naming a
// shape flag < 1.
MaskShape resolve_shape(const MaskFlags& flags, std::initializer_list<MaskShape> implied);

}  // namespace maskattn::cli
