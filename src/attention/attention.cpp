// attention() and attention_backward(): every argument checked once, here
// (the two share the checks of q, k, v, the options and the mask), then one
// backend runs. Also dropout_keep() (the one dropout stream every backend
// draws) and backend_name().
#include "maskattn/attention.hpp"

#include <fmt/format.h>

#include <algorithm>
#include <array>
#include <cmath>
#include <cstdint>
#include <numeric>
#include <string>
#include <type_traits>
#include <utility>
#include <vector>

#include "attention/attention_call.hpp"
#include "attention/flash.hpp"
#include "attention/flash_backward.hpp"
#include "attention/reference.hpp"
#include "core/counter_rng.hpp"

namespace maskattn {
namespace {

template <class T, int N>
std::string shape_of(const View<T, N>& v) {
  return shape_string(v.shape());
}

// A view with elements must point somewhere.
template <class T, int N>
void check_data(const View<T, N>& v, std::string_view name) {
  if (v.numel() > 0 && v.data() == nullptr)
    throw Error(name, fmt::format("data for shape {}", shape_of(v)), "a null pointer");
}

template <class T, int N>
void check_shape(const View<T, N>& v, std::string_view name,
                 const std::type_identity_t<std::array<int64_t, N>>& want) {
  if (v.shape() != want) throw Error(name, shape_string(want), shape_of(v));
  check_data(v, name);
}

// Byte range [begin, end) a view's elements occupy; begin == end when it has none.
struct Extent {
  uintptr_t begin = 0, end = 0;
};

template <class T, int N>
Extent extent_of(const View<T, N>& v) {
  if (v.numel() == 0 || v.data() == nullptr) return {};
  int64_t last = 0;  // offset of the last element, in elements
  for (int d = 0; d < N; ++d) last += (v.size(d) - 1) * v.stride(d);
  const auto begin = reinterpret_cast<uintptr_t>(v.data());
  return {begin, begin + static_cast<uintptr_t>(last + 1) * sizeof(T)};
}

bool overlap(const Extent& a, const Extent& b) {
  return a.begin < a.end && b.begin < b.end && a.begin < b.end && b.begin < a.end;
}

// An output written by several threads must not alias itself: with the
// dimensions of size > 1 sorted by stride, each stride must step past
// everything the smaller ones span (a sufficient test; BHLD, BLHD and any
// permutation of a dense layout pass).
template <int N>
void check_no_self_overlap(const View<float, N>& v, std::string_view name) {
  // Without elements nothing is written: any strides will do (a zero-size
  // batch viewed as BLHD has a stride of 0 on another dimension).
  for (int d = 0; d < N; ++d)
    if (v.size(d) == 0) return;
  std::array<int, N> dims{};
  std::iota(dims.begin(), dims.end(), 0);
  std::sort(dims.begin(), dims.end(), [&](int a, int b) { return v.stride(a) < v.stride(b); });
  int64_t span = 1;  // elements spanned by the dimensions seen so far
  for (int d : dims) {
    if (v.size(d) <= 1) continue;
    if (v.stride(d) < span)
      throw Error(name, "a view whose elements do not overlap",
                  fmt::format("shape {} with strides {}", shape_of(v), shape_string(v.strides())));
    span += (v.size(d) - 1) * v.stride(d);
  }
}

// head_mask: float32/float64, (Hq) or (B, Hq), finite. Returns it as (B, Hq)
// flattened, or empty when absent.
std::vector<double> read_head_mask(const AnyView& m, int64_t batch, int64_t heads) {
  if (m.empty()) return {};
  const std::string expected =
      fmt::format("float32 or float64 of shape ({},) or ({}, {})", heads, batch, heads);
  const bool shape_ok = (m.rank() == 1 && m.shape[0] == heads) ||
                        (m.rank() == 2 && m.shape[0] == batch && m.shape[1] == heads);
  if (!m.is_float() || !shape_ok || m.strides.size() != m.shape.size())
    throw Error("opts.head_mask", expected, m.describe());
  std::vector<double> out(static_cast<std::size_t>(batch * heads));
  for (int64_t b = 0; b < batch; ++b)
    for (int64_t h = 0; h < heads; ++h) {
      const std::array<int64_t, 2> idx2{b, h};
      const std::array<int64_t, 1> idx1{h};
      const double x = m.rank() == 1 ? m.at(idx1) : m.at(idx2);
      if (!std::isfinite(x))
        throw Error("opts.head_mask", "finite multipliers",
                    m.rank() == 1 ? fmt::format("head_mask[{}] = {}", h, x)
                                  : fmt::format("head_mask[{}, {}] = {}", b, h, x));
      out[static_cast<std::size_t>(b * heads + h)] = x;
    }
  return out;
}

// EmptyRows::Error: find the first row (in b, h, i order) with no allowed key
// before anything is written.
void check_no_empty_rows(const BoundMask& mask) {
  const MaskShape& s = mask.shape();
  for (int64_t b = 0; b < s.batch; ++b)
    for (int64_t h = 0; h < s.heads; ++h) {
      if (mask.classify(b, h, 0, s.q_len, 0, s.k_len) == TileClass::Full) continue;
      for (int64_t i = 0; i < s.q_len; ++i)
        if (mask.classify(b, h, i, i + 1, 0, s.k_len) == TileClass::Empty)
          throw Error("mask",
                      "at least one allowed key in every query row (opts.empty_rows = Error)",
                      fmt::format("an empty row at (b, h, i) = ({}, {}, {}) of (B, H, Lq, Lk) = "
                                  "({}, {}, {}, {})",
                                  b, h, i, s.batch, s.heads, s.q_len, s.k_len));
    }
}

}  // namespace

std::string_view backend_name(Backend b) {
  switch (b) {
    case Backend::Auto: return "auto";
    case Backend::Reference: return "reference";
    case Backend::Flash: return "flash";
  }
  return "unknown";
}

bool dropout_keep(uint64_t seed, float dropout_p, const MaskShape& shape, int64_t b, int64_t h,
                  int64_t i, int64_t j) noexcept {
  if (!(dropout_p > 0.0f)) return true;
  // Flat (b, h, i, j) index; unsigned so a huge shape wraps instead of overflowing.
  const auto u = [](int64_t x) { return static_cast<uint64_t>(x); };
  const uint64_t counter =
      ((u(b) * u(shape.heads) + u(h)) * u(shape.q_len) + u(i)) * u(shape.k_len) + u(j);
  return detail::counter_uniform(seed, counter) >= static_cast<double>(dropout_p);
}

namespace {

// q (B, Hq, Lq, D), k (B, Hkv, Lk, D) with Hkv | Hq, v (B, Hkv, Lk, Dv).
template <class T>
void check_inputs(const View<const T, 4>& q, const View<const T, 4>& k, const View<const T, 4>& v) {
  const int64_t batch = q.size(0), hq = q.size(1), dim = q.size(3);
  if (hq < 1 || dim < 1) throw Error("q", "(B, Hq, Lq, D) with Hq >= 1 and D >= 1", shape_of(q));
  check_data(q, "q");
  const int64_t hkv = k.size(1), lk = k.size(2);
  if (k.size(0) != batch || k.size(3) != dim || hkv < 1 || hq % hkv != 0)
    throw Error("k",
                fmt::format("({}, Hkv, Lk, {}) with Hkv >= 1 dividing Hq = {} (q is {})", batch,
                            dim, hq, shape_of(q)),
                shape_of(k));
  check_data(k, "k");
  const int64_t dv = v.size(3);
  if (v.size(0) != batch || v.size(1) != hkv || v.size(2) != lk || dv < 1)
    throw Error("v",
                fmt::format("({}, {}, {}, Dv) with Dv >= 1 (k is {})", batch, hkv, lk, shape_of(k)),
                shape_of(v));
  check_data(v, "v");
}

// The forward's shapes: the inputs, out (B, Hq, Lq, Dv), weights (B, Hq, Lq,
// Lk) and lse (B, Hq, Lq) when given.
template <class T>
void check_shapes(const View<const T, 4>& q, const View<const T, 4>& k, const View<const T, 4>& v,
                  const View<float, 4>& out, const View<float, 4>& weights,
                  const View<float, 3>& lse) {
  check_inputs(q, k, v);
  const int64_t batch = q.size(0), hq = q.size(1), lq = q.size(2), lk = k.size(2);
  check_shape(out, "out", {batch, hq, lq, v.size(3)});
  if (!weights.empty()) check_shape(weights, "weights", {batch, hq, lq, lk});
  if (!lse.empty()) check_shape(lse, "lse", {batch, hq, lq});
}

struct Named {
  const char* name;
  Extent extent;
};

// Outputs are written while inputs are read, by several threads: no output
// may alias an input or another output (each output's own elements are
// checked by check_no_self_overlap). Inputs may alias each other.
template <std::size_t I, std::size_t O>
void check_disjoint(const std::array<Named, I>& inputs, const std::array<Named, O>& outputs) {
  for (std::size_t o = 0; o < outputs.size(); ++o) {
    for (const Named& in : inputs)
      if (overlap(outputs[o].extent, in.extent))
        throw Error(outputs[o].name, fmt::format("memory that does not overlap {}", in.name),
                    fmt::format("a view overlapping {}", in.name));
    for (std::size_t p = o + 1; p < outputs.size(); ++p)
      if (overlap(outputs[o].extent, outputs[p].extent))
        throw Error(outputs[p].name,
                    fmt::format("memory that does not overlap {}", outputs[o].name),
                    fmt::format("a view overlapping {}", outputs[o].name));
  }
}

template <class T>
void check_no_aliasing(const View<const T, 4>& q, const View<const T, 4>& k,
                       const View<const T, 4>& v, const View<float, 4>& out,
                       const View<float, 4>& weights, const View<float, 3>& lse) {
  check_no_self_overlap(out, "out");
  check_no_self_overlap(weights, "weights");
  check_no_self_overlap(lse, "lse");
  check_disjoint<3, 3>(
      {{{"q", extent_of(q)}, {"k", extent_of(k)}, {"v", extent_of(v)}}},
      {{{"out", extent_of(out)}, {"weights", extent_of(weights)}, {"lse", extent_of(lse)}}});
}

// Checks opts and copies them into call (shapes already checked).
void read_options(const AttentionOptions& opts, detail::AttentionCall& call) {
  call.scale = 1.0 / std::sqrt(static_cast<double>(call.d));
  if (opts.scale) {
    if (!std::isfinite(*opts.scale))
      throw Error("opts.scale", "a finite scale (or none: 1/sqrt(D))",
                  fmt::format("{}", *opts.scale));
    call.scale = *opts.scale;
  }
  if (!(opts.dropout_p >= 0.0f && opts.dropout_p < 1.0f))
    throw Error("opts.dropout_p", "a probability in [0, 1)", fmt::format("{}", opts.dropout_p));
  call.dropout_p = opts.dropout_p;
  call.seed = opts.seed;
  if (!(std::isfinite(opts.softcap) && opts.softcap >= 0.0f))
    throw Error("opts.softcap", "a finite cap >= 0 (0 = off)", fmt::format("{}", opts.softcap));
  call.softcap = opts.softcap;
  call.head_mask = read_head_mask(opts.head_mask, call.batch, call.hq);
  switch (opts.empty_rows) {
    case EmptyRows::Zero:
    case EmptyRows::NaN:
    case EmptyRows::Error: break;
    default:
      throw Error("opts.empty_rows", "EmptyRows::Zero, NaN or Error",
                  std::to_string(static_cast<int>(opts.empty_rows)));
  }
  call.empty_rows = opts.empty_rows;
  switch (opts.backend) {
    case Backend::Auto:
    case Backend::Reference:
    case Backend::Flash: break;
    default:
      throw Error("opts.backend", "Backend::Auto, Reference or Flash",
                  std::to_string(static_cast<int>(opts.backend)));
  }
}

// The sizes of call from its inputs (already checked), its options read and
// checked, and the mask bound to (B, Hq, Lq, Lk) (a part that does not fit
// throws from bind()). The caller keeps the BoundMask alive while call is used.
template <class T>
BoundMask prepare_call(detail::Inputs<T> in, const Mask& mask, const AttentionOptions& opts,
                       detail::AttentionCall& call) {
  if constexpr (std::is_same_v<T, BFloat16>) {
    call.is_bf16 = true;
    call.bf16 = in;
  } else {
    call.f32 = in;
  }
  call.batch = in.q.size(0), call.hq = in.q.size(1), call.hkv = in.k.size(1);
  call.lq = in.q.size(2), call.lk = in.k.size(2), call.d = in.q.size(3), call.dv = in.v.size(3);
  read_options(opts, call);
  BoundMask bound = mask.bind({call.batch, call.hq, call.lq, call.lk});
  if (opts.empty_rows == EmptyRows::Error) check_no_empty_rows(bound);
  return bound;
}

// Checks every argument, then runs one backend: Auto is flash (it serves
// every call); reference only when asked.
template <class T>
void attention_checked(detail::Inputs<T> in, View<float, 4> out, const Mask& mask,
                       const AttentionOptions& opts, View<float, 4> weights, View<float, 3> lse) {
  check_shapes(in.q, in.k, in.v, out, weights, lse);
  check_no_aliasing(in.q, in.k, in.v, out, weights, lse);
  detail::AttentionCall call;
  const BoundMask bound = prepare_call(in, mask, opts, call);
  call.out = out, call.weights = weights, call.lse = lse;
  call.mask = &bound;

  switch (opts.backend) {
    case Backend::Reference: detail::attention_reference(call); break;
    case Backend::Auto:
    case Backend::Flash: detail::attention_flash(call); break;
  }
}

}  // namespace

void attention(View<const float, 4> q, View<const float, 4> k, View<const float, 4> v,
               View<float, 4> out, const Mask& mask, const AttentionOptions& opts,
               View<float, 4> weights, View<float, 3> lse) {
  attention_checked<float>({q, k, v}, out, mask, opts, weights, lse);
}

void attention(View<const BFloat16, 4> q, View<const BFloat16, 4> k, View<const BFloat16, 4> v,
               View<float, 4> out, const Mask& mask, const AttentionOptions& opts,
               View<float, 4> weights, View<float, 3> lse) {
  attention_checked<BFloat16>({q, k, v}, out, mask, opts, weights, lse);
}

void attention_backward(View<const float, 4> q, View<const float, 4> k, View<const float, 4> v,
                        View<const float, 4> out, View<const float, 3> lse,
                        View<const float, 4> dout, View<float, 4> dq, View<float, 4> dk,
                        View<float, 4> dv, const Mask& mask, const AttentionOptions& opts) {
  // Shapes: the forward's inputs, its out and lse, dout like out, the
  // gradients like the inputs.
  check_inputs(q, k, v);
  const int64_t batch = q.size(0), hq = q.size(1), lq = q.size(2);
  check_shape(out, "out", {batch, hq, lq, v.size(3)});
  check_shape(lse, "lse", {batch, hq, lq});
  check_shape(dout, "dout", out.shape());
  check_shape(dq, "dq", q.shape());
  check_shape(dk, "dk", k.shape());
  check_shape(dv, "dv", v.shape());
  check_no_self_overlap(dq, "dq");
  check_no_self_overlap(dk, "dk");
  check_no_self_overlap(dv, "dv");
  check_disjoint<6, 3>({{{"q", extent_of(q)},
                         {"k", extent_of(k)},
                         {"v", extent_of(v)},
                         {"out", extent_of(out)},
                         {"lse", extent_of(lse)},
                         {"dout", extent_of(dout)}}},
                       {{{"dq", extent_of(dq)}, {"dk", extent_of(dk)}, {"dv", extent_of(dv)}}});
  detail::BackwardCall call;
  const BoundMask bound = prepare_call<float>({q, k, v}, mask, opts, call.fwd);
  call.fwd.mask = &bound;
  call.out = out, call.lse = lse, call.dout = dout;
  call.dq = dq, call.dk = dk, call.dv = dv;

  switch (opts.backend) {
    case Backend::Reference: detail::attention_backward_reference(call); break;
    case Backend::Auto:
    case Backend::Flash: detail::attention_backward_flash(call); break;
  }
}

}  // namespace maskattn
