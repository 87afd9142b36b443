#include "mask_flags.hpp"

#include <fmt/format.h>

#include <algorithm>
#include <charconv>
#include <map>
#include <memory>
#include <sstream>

#include "maskattn/io/npy.hpp"
#include "maskattn/io/safetensors.hpp"

namespace maskattn::cli {
namespace {

Align read_align(const std::string& text, std::string_view flag) {
  if (text == "top-left") return Align::TopLeft;
  if (text == "bottom-right") return Align::BottomRight;
  throw Error(flag, "top-left or bottom-right", text);
}

int64_t read_int(std::string_view text, std::string_view flag, std::string_view what) {
  int64_t v = 0;
  const auto [end, ec] = std::from_chars(text.data(), text.data() + text.size(), v);
  if (ec != std::errc() || end != text.data() + text.size())
    throw Error(flag, what, fmt::format("\"{}\"", text));
  return v;
}

std::vector<std::string_view> split(std::string_view text, char sep) {
  std::vector<std::string_view> parts;
  std::size_t start = 0;
  while (true) {
    const std::size_t at = text.find(sep, start);
    parts.push_back(text.substr(start, at == std::string_view::npos ? at : at - start));
    if (at == std::string_view::npos) return parts;
    start = at + 1;
  }
}

// An array from FILE.npy or FILE.safetensors[:TENSOR]; keeps its storage alive.
struct ArrayFile {
  NpyArray npy;
  std::optional<SafetensorsFile> safetensors;
  AnyView view;
};

ArrayFile load_array(const std::string& spec, std::string_view flag) {
  ArrayFile a;
  const std::size_t st = spec.rfind(".safetensors");
  try {
    if (st == std::string::npos) {
      a.npy = load_npy(spec);
      a.view = a.npy.view();
      return a;
    }
    const std::string path = spec.substr(0, st + 12);
    a.safetensors.emplace(SafetensorsFile::open(path));
    std::string name;
    if (spec.size() > path.size()) {
      if (spec[path.size()] != ':')
        throw Error(flag, "FILE.npy or FILE.safetensors[:TENSOR]", spec);
      name = spec.substr(path.size() + 1);
    } else {
      const std::vector<std::string> names = a.safetensors->names();
      if (names.size() != 1)
        throw Error(flag, fmt::format("{}:TENSOR naming one of its tensors", path),
                    fmt::format("{} tensors ({})", names.size(), fmt::join(names, ", ")));
      name = names.front();
    }
    a.view = a.safetensors->view(name);
    return a;
  } catch (const Error& e) {
    if (e.argument() == flag) throw;
    throw Error(flag, e.expected(), fmt::format("{} ({})", e.actual(), e.argument()));
  }
}

// The sizes an array says of (B, H, Lq, Lk); 0 = says nothing.
struct Sizes {
  int64_t batch = 0, heads = 0, q = 0, k = 0;
};

// Right-aligned against (B, H, L, S): SDPA and ONNX masks.
Sizes right_aligned(const AnyView& v) {
  Sizes s;
  const auto& d = v.shape;
  const int r = v.rank();
  if (r >= 1) s.k = d[static_cast<std::size_t>(r - 1)];
  if (r >= 2) s.q = d[static_cast<std::size_t>(r - 2)];
  if (r >= 3) s.heads = d[static_cast<std::size_t>(r - 3)];
  if (r >= 4) s.batch = d[0];
  return s;
}

Mask with_context(std::string_view flag, const std::function<Mask()>& make) {
  try {
    return make();
  } catch (const Error& e) {
    throw Error(fmt::format("{} ({})", flag, e.argument()), e.expected(), e.actual());
  }
}

}  // namespace

std::string MaskFlags::flag(std::string_view name) const {
  return fmt::format("--{}{}", flag_prefix, name);
}

void add_mask_flags(CLI::App& cmd, MaskFlags& f, bool shape_flags, std::string_view flag_prefix,
                    std::string_view group) {
  f.flag_prefix = flag_prefix;
  // Each option in `group` (the help's "OPTIONS" when empty).
  const auto option = [&](std::string_view name, auto& value, const std::string& help) {
    CLI::Option* o = cmd.add_option(f.flag(name), value, help);
    if (!group.empty()) o->group(std::string(group));
    return o;
  };
  option("causal", f.causal,
         "Look-ahead mask: key j visible to query i iff j <= i; bottom-right aligns the "
         "last query with the last key (decoding, Lq < Lk)")
      ->expected(0, 1)
      ->default_str("top-left");
  option("align", f.align,
         fmt::format("Alignment of {} and {}: top-left or bottom-right [top-left]",
                     f.flag("window"), f.flag("prefix")));
  option("lengths", f.lengths, "Key padding from lengths, one per batch element: 5,3,8")
      ->delimiter(',');
  option("query-lengths", f.query_lengths, "Query padding from lengths (rows past them are empty)")
      ->delimiter(',');
  option("window", f.window,
         "Sliding window L,R: keys i-L..i+R (R defaults to 0; 'inf' for no limit)");
  option("documents", f.documents,
         "Packed sequences (block diagonal): document ids 0,0,0,1,1 shared by the batch, "
         "or one row per batch element separated by ';'");
  option("prefix", f.prefix, "Prefix-LM: the first N keys visible to every query");
  option("from-torch-mha", f.torch_mha,
         "nn.MultiheadAttention attn_mask (bool True = masked, or float additive; (L, S) "
         "or (B*heads, L, S)) from FILE.npy or FILE.safetensors:TENSOR");
  option("key-padding-mask", f.key_padding_mask,
         "nn.MultiheadAttention key_padding_mask (B, S), True = padding");
  option("from-sdpa", f.sdpa,
         "scaled_dot_product_attention attn_mask (bool True = may attend, or float)");
  option("from-hf", f.hf,
         "Hugging Face attention_mask: (B, S) 1 = token, 0 = padding; or the 4-D form");
  option("from-keras", f.keras, "Keras attention_mask (B, T, S), 1 = attend");
  option("from-onnx", f.onnx, "ONNX Attention attn_mask (bool True = attend, or float)");
  option("keep", f.keep, "Dense bool mask, True = may attend");
  option("block", f.block, "Dense bool mask, True = masked");
  option("bias", f.bias, "Dense additive float mask, -inf = masked");
  if (shape_flags) {
    option("batch", f.batch, "Batch size B [from the mask's arrays and lengths, or 1]");
    option("heads", f.heads, "Heads H [from the arrays, or 1]");
    option("q-len", f.q_len, "Queries Lq [from the arrays, or Lk, or 8]");
    option("k-len", f.k_len, "Keys Lk [from the arrays or lengths, or Lq, or 8]");
  }
}

BuiltMask build_mask(const MaskFlags& f, const std::optional<MaskShape>& known) {
  BuiltMask r;
  const Align align = read_align(f.align, f.flag("align"));
  std::vector<Sizes> says;  // what each part implies about the shape

  // CLI11 leaves f.causal empty when --causal is absent and sets it to its
  // default_str ("top-left") when it is given without a value.
  if (!f.causal.empty()) {
    const Align a = read_align(f.causal, f.flag("causal"));
    r.mask &= causal(a);
    r.diagonal = a;
  } else {
    r.diagonal = align;
  }
  if (!f.window.empty()) {
    const std::vector<std::string_view> lr = split(f.window, ',');
    if (lr.size() > 2) throw Error(f.flag("window"), "L or L,R", f.window);
    const auto side = [&](std::string_view t) {
      if (t == "inf") return kUnbounded;
      const int64_t v = read_int(t, f.flag("window"), "widths L,R: integers >= 0 or inf");
      if (v < 0) throw Error(f.flag("window"), "widths L,R: integers >= 0 or inf", f.window);
      return v;
    };
    r.mask &= sliding_window(side(lr[0]), lr.size() == 2 ? side(lr[1]) : 0, align);
  }
  if (f.prefix)
    r.mask &= with_context(f.flag("prefix"), [&] { return prefix_lm(*f.prefix, align); });
  if (!f.lengths.empty()) {
    r.mask &= with_context(f.flag("lengths"), [&] { return key_lengths(f.lengths); });
    says.push_back({static_cast<int64_t>(f.lengths.size()), 0, 0,
                    *std::max_element(f.lengths.begin(), f.lengths.end())});
  }
  if (!f.query_lengths.empty()) {
    r.mask &= with_context(f.flag("query-lengths"), [&] { return query_lengths(f.query_lengths); });
    says.push_back({static_cast<int64_t>(f.query_lengths.size()), 0,
                    *std::max_element(f.query_lengths.begin(), f.query_lengths.end()), 0});
  }
  if (!f.documents.empty()) {
    std::vector<std::vector<int64_t>> rows;
    for (std::string_view row : split(f.documents, ';')) {
      rows.emplace_back();
      for (std::string_view id : split(row, ','))
        rows.back().push_back(
            read_int(id, f.flag("documents"), "integer document ids: 0,0,1;0,1,1"));
    }
    const std::size_t len = rows.front().size();
    for (const auto& row : rows)
      if (row.size() != len)
        throw Error(f.flag("documents"), fmt::format("rows of one length ({})", len),
                    fmt::format("a row of {}", row.size()));
    std::vector<int64_t> flat;
    for (const auto& row : rows) flat.insert(flat.end(), row.begin(), row.end());
    const auto n = static_cast<int64_t>(len);
    if (rows.size() == 1)
      r.mask &= documents(View<const int64_t, 1>(flat.data(), {n}));
    else
      r.mask &=
          documents(View<const int64_t, 2>(flat.data(), {static_cast<int64_t>(rows.size()), n}));
    says.push_back({rows.size() > 1 ? static_cast<int64_t>(rows.size()) : 0, 0, n, n});
  }

  // Arrays: each read, turned into its Mask (which copies the data) and dropped.
  if (!f.torch_mha.empty() || !f.key_padding_mask.empty()) {
    ArrayFile attn, padding;
    if (!f.torch_mha.empty()) attn = load_array(f.torch_mha, f.flag("from-torch-mha"));
    if (!f.key_padding_mask.empty())
      padding = load_array(f.key_padding_mask, f.flag("key-padding-mask"));
    const int64_t heads = known ? known->heads : f.heads.value_or(0);
    r.mask &=
        with_context(f.torch_mha.empty() ? f.flag("key-padding-mask") : f.flag("from-torch-mha"),
                     [&] { return from_torch_mha_mask(attn.view, padding.view, heads); });
    if (attn.view.rank() >= 2) {
      Sizes s = right_aligned(attn.view);
      s.heads = 0;
      if (attn.view.rank() == 3) s.batch = heads > 0 ? attn.view.shape[0] / heads : 0;
      says.push_back(s);
    }
    if (padding.view.rank() == 2)
      says.push_back({padding.view.shape[0], 0, 0, padding.view.shape[1]});
  }
  const auto dense = [&](const std::string& spec, std::string_view flag, auto make, auto sizes) {
    if (spec.empty()) return;
    ArrayFile a = load_array(spec, flag);
    r.mask &= with_context(flag, [&] { return make(a.view); });
    says.push_back(sizes(a.view));
  };
  dense(
      f.sdpa, f.flag("from-sdpa"), [](const AnyView& v) { return from_sdpa_mask(v); },
      right_aligned);
  dense(
      f.onnx, f.flag("from-onnx"), [](const AnyView& v) { return from_onnx_attention_mask(v); },
      right_aligned);
  dense(
      f.hf, f.flag("from-hf"), [](const AnyView& v) { return from_hf_attention_mask(v); },
      [](const AnyView& v) {
        if (v.rank() == 2) return Sizes{v.shape[0], 0, 0, v.shape[1]};
        return right_aligned(v);
      });
  dense(
      f.keras, f.flag("from-keras"), [](const AnyView& v) { return from_keras_mask(v); },
      [](const AnyView& v) {
        Sizes s = right_aligned(v);
        s.batch = s.heads, s.heads = 0;  // (B, T, S): never B*H
        return s;
      });
  // keep / block / bias: (L, S), (B or B*H, L, S) or (B, H, L, S).
  const auto dense_sizes = [](const AnyView& v) {
    Sizes s = right_aligned(v);
    if (v.rank() == 3) s.batch = s.heads, s.heads = 0;
    return s;
  };
  dense(
      f.keep, f.flag("keep"), [](const AnyView& v) { return keep(v); }, dense_sizes);
  dense(
      f.block, f.flag("block"), [](const AnyView& v) { return block(v); }, dense_sizes);
  dense(
      f.bias, f.flag("bias"), [](const AnyView& v) { return bias(v); }, dense_sizes);

  // The largest size any part implies (a 1 may be broadcast).
  for (const Sizes& size : says) {
    r.implied.batch = std::max(r.implied.batch, size.batch);
    r.implied.heads = std::max(r.implied.heads, size.heads);
    r.implied.q_len = std::max(r.implied.q_len, size.q);
    r.implied.k_len = std::max(r.implied.k_len, size.k);
  }
  r.shape = known ? *known : resolve_shape(f, {r.implied});
  return r;
}

MaskShape resolve_shape(const MaskFlags& f, std::initializer_list<MaskShape> implied) {
  for (const auto& [flag, value] : {std::pair{"--batch", f.batch}, std::pair{"--heads", f.heads},
                                    std::pair{"--q-len", f.q_len}, std::pair{"--k-len", f.k_len}})
    if (value && *value < 1) throw Error(flag, "a size >= 1", std::to_string(*value));
  MaskShape most{0, 0, 0, 0};
  for (const MaskShape& m : implied) {
    most.batch = std::max(most.batch, m.batch);
    most.heads = std::max(most.heads, m.heads);
    most.q_len = std::max(most.q_len, m.q_len);
    most.k_len = std::max(most.k_len, m.k_len);
  }
  MaskShape shape;
  shape.batch = f.batch.value_or(std::max<int64_t>(most.batch, 1));
  shape.heads = f.heads.value_or(std::max<int64_t>(most.heads, 1));
  int64_t q = f.q_len.value_or(most.q_len), k = f.k_len.value_or(most.k_len);
  if (q == 0) q = k;
  if (k == 0) k = q;
  if (q == 0) q = k = 8;
  shape.q_len = q;
  shape.k_len = k;
  return shape;
}

}  // namespace maskattn::cli
