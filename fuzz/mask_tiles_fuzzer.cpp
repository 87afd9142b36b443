// libFuzzer target: masks built from fuzzed parameters, their tile classes
// and element values checked against materialize() and against each part's
// definition in include/maskattn/mask.hpp, rewritten here as element rules.
//
// One input is a problem shape (B, H, Lq, Lk), one to four parts combined with
// & (causal, sliding_window, prefix_lm with either alignment; key_lengths,
// query_lengths; keep / block / bias in every broadcast layout, strided or
// not, float32 or float64; documents, self or cross, sorted or not, int32 or
// int64; alibi with any finite slopes; predicate; and the from_torch_mha /
// sdpa / hf / keras / onnx adapters) and tile sizes. Rarely a parameter is
// made invalid on purpose (a negative width, a length past L, a shape that
// does not broadcast, NaN in a bias, a wrong dtype, ...).
//
// Findings (the target aborts with a message naming the mask and where):
//   - an exception other than maskattn::Error, or an invalid parameter that
//     gives no Error;
//   - materialize() differing from the parts' rules (-inf exactly where a part
//     masks; elsewhere the sum of the biases, finite: saturated at float's
//     range, never +-inf or NaN);
//   - BoundMask::classify() differing from the class counted from
//     materialize() on the tile grids of fuzzed tile sizes, on random
//     rectangles and, for small shapes, on every rectangle (classify()
//     promises an exact class; Empty or Full where it is not would make the
//     flash kernel skip or leave unmasked a tile it must not);
//   - tile_values() (the kernel's key-major tiles) or value() differing from
//     materialize();
//   - on huge shapes (Lq, Lk up to 2^63 - 1, index-computed parts only): a
//     sanitizer report (overflow), or classify() / row_values() of small
//     tiles anywhere differing from the rules, or a large tile's class
//     contradicting a small tile inside it.
#include <fuzzer/FuzzedDataProvider.h>

#include <algorithm>
#include <cmath>
#include <cstdint>
#include <cstdio>
#include <cstdlib>
#include <functional>
#include <limits>
#include <memory>
#include <optional>
#include <string>
#include <utility>
#include <vector>

#include "mask/mask_oracle.hpp"
#include "maskattn/error.hpp"
#include "maskattn/mask.hpp"
#include "maskattn/tensor.hpp"

namespace maskattn {
namespace {

constexpr float kNegInf = -std::numeric_limits<float>::infinity();
constexpr float kFloatMax = std::numeric_limits<float>::max();
constexpr int64_t kInt64Max = std::numeric_limits<int64_t>::max();

[[noreturn]] void finding(const std::string& what) {
  std::fprintf(stderr, "mask_tiles_fuzzer finding: %s\n", what.c_str());
  std::abort();
}

// A part's value at (b, h, i, j): nullopt where it masks, else its bias.
using PartRule = std::function<std::optional<double>(int64_t, int64_t, int64_t, int64_t)>;

struct Part {
  Mask mask;
  PartRule rule;
  double magnitude = 0.0;  // largest |bias| the part adds
};

// A value saturated to float's finite range, as row_values() promises.
float saturate(double x) {
  return static_cast<float>(std::clamp<double>(x, -kFloatMax, kFloatMax));
}

// What a dense tensor's dimensions mean against (B, H, Lq, Lk).
enum class Role {
  Batch,
  Head,
  Query,
  Key,
  Slices3,  // the first dim of a rank-3 keep/block/bias: B*H, B or 1 (bind decides)
  TorchBH,  // torch.nn.MultiheadAttention's (B*num_heads, L, S) first dim
};

// How a dense tensor's values are read.
enum class Reading { Keep, Block, Bias, HfAdditive };

// A dense mask tensor: values (row-major over `shape`), a memory layout
// (strided or not) and the rule reading it.
class DenseTensor {
 public:
  DenseTensor(std::vector<int64_t> shape, std::vector<Role> roles, DType dtype, Reading reading)
      : shape_(std::move(shape)), roles_(std::move(roles)), dtype_(dtype), reading_(reading) {
    values_.assign(static_cast<std::size_t>(numel()), 0.0);
  }

  int64_t numel() const {
    int64_t n = 1;
    for (int64_t x : shape_) n *= x;
    return n;
  }
  std::vector<double>& values() { return values_; }
  const std::vector<double>& values() const { return values_; }
  const std::vector<int64_t>& shape() const { return shape_; }
  void set_torch_heads(int64_t nh) { torch_heads_ = nh; }

  // Lays the values out in memory: padded (gaps between rows and slices) when
  // `padded`, else contiguous. The returned view lives as long as *this.
  AnyView view(bool padded) {
    const std::size_t rank = shape_.size();
    std::vector<int64_t> strides(rank, 1);
    int64_t span = 1;  // elements one step of dimension d must skip
    for (std::size_t d = rank; d-- > 0;) {
      strides[d] = span;
      span = shape_[d] * span + (padded ? (d + 1 == rank ? 2 : 3) : 0);
    }
    const std::size_t n = static_cast<std::size_t>(span + 1);
    std::vector<int64_t> index(rank, 0);
    auto offset = [&] {
      int64_t o = 0;
      for (std::size_t d = 0; d < rank; ++d) o += index[d] * strides[d];
      return static_cast<std::size_t>(o);
    };
    auto each = [&](auto&& store) {
      for (std::size_t k = 0; k < values_.size(); ++k) {
        std::size_t rem = k;
        for (std::size_t d = rank; d-- > 0;) {
          index[d] = static_cast<int64_t>(rem % static_cast<std::size_t>(shape_[d]));
          rem /= static_cast<std::size_t>(shape_[d]);
        }
        store(offset(), values_[k]);
      }
    };
    switch (dtype_) {
      case DType::Bool:
        bools_.reset(new bool[n]());
        each([&](std::size_t o, double v) { bools_[o] = v != 0.0; });
        return AnyView(bools_.get(), dtype_, shape_, strides);
      case DType::Int64:
        int64s_.assign(n, 0);
        each([&](std::size_t o, double v) {
          int64s_[o] = std::isfinite(v) ? static_cast<int64_t>(std::clamp(v, -9.2e18, 9.2e18)) : 0;
        });
        return AnyView(int64s_.data(), dtype_, shape_, strides);
      case DType::Int32:
        int32s_.assign(n, 0);
        each([&](std::size_t o, double v) {
          int32s_[o] = std::isfinite(v) ? static_cast<int32_t>(std::clamp(v, -2e9, 2e9)) : 0;
        });
        return AnyView(int32s_.data(), dtype_, shape_, strides);
      case DType::Float32:
        floats_.assign(n, 0.0f);
        each([&](std::size_t o, double v) { floats_[o] = static_cast<float>(v); });
        return AnyView(floats_.data(), dtype_, shape_, strides);
      default:
        doubles_.assign(n, 0.0);
        each([&](std::size_t o, double v) { doubles_[o] = v; });
        return AnyView(doubles_.data(), DType::Float64, shape_, strides);
    }
  }

  // The element (b, h, i, j) reads, by PyTorch broadcasting (size-1 dims read
  // index 0), as the library documents for this layout.
  double at(const MaskShape& s, int64_t b, int64_t h, int64_t i, int64_t j) const {
    int64_t k = 0;
    for (std::size_t d = 0; d < shape_.size(); ++d) {
      const int64_t n = shape_[d];
      int64_t x = 0;
      switch (roles_[d]) {
        case Role::Batch: x = b; break;
        case Role::Head: x = h; break;
        case Role::Query: x = i; break;
        case Role::Key: x = j; break;
        case Role::Slices3: x = n == s.batch * s.heads ? b * s.heads + h : b; break;
        case Role::TorchBH: {
          const int64_t nb = n / torch_heads_;
          x = (nb == 1 ? 0 : b) * torch_heads_ + (torch_heads_ == 1 ? 0 : h);
          break;
        }
      }
      k = k * n + (n == 1 && roles_[d] != Role::TorchBH ? 0 : x);
    }
    return values_[static_cast<std::size_t>(k)];
  }

  PartRule rule(const MaskShape& s) const {
    auto self = std::make_shared<const DenseTensor>(*this);
    return [self, s](int64_t b, int64_t h, int64_t i, int64_t j) -> std::optional<double> {
      const double v = self->at(s, b, h, i, j);
      switch (self->reading_) {
        case Reading::Keep: return v != 0.0 ? std::optional<double>(0.0) : std::nullopt;
        case Reading::Block: return v == 0.0 ? std::optional<double>(0.0) : std::nullopt;
        case Reading::Bias:
          if (v == -std::numeric_limits<double>::infinity()) return std::nullopt;
          return v;
        case Reading::HfAdditive:
          if (v <= std::numeric_limits<float>::lowest()) return std::nullopt;
          return v;
      }
      return std::nullopt;
    };
  }

  double magnitude() const {
    double m = 0.0;
    for (double v : values_)
      if (std::isfinite(v)) m = std::max(m, std::fabs(v));
    return m;
  }

 private:
  std::vector<int64_t> shape_;
  std::vector<Role> roles_;
  DType dtype_;
  Reading reading_;
  int64_t torch_heads_ = 1;
  std::vector<double> values_;
  // Storage of view(): one of these, by dtype.
  std::shared_ptr<bool[]> bools_;
  std::vector<int64_t> int64s_;
  std::vector<int32_t> int32s_;
  std::vector<float> floats_;
  std::vector<double> doubles_;
};

// Builds parts from the fuzzer's bytes. `invalid` records that a parameter
// was made invalid on purpose: building or binding the mask must then throw.
class PartMaker {
 public:
  PartMaker(FuzzedDataProvider& in, const MaskShape& s, bool huge) : in_(in), s_(s), huge_(huge) {}

  bool invalid() const { return invalid_; }

  Part make() {
    const int kinds = huge_ ? 6 : 13;
    switch (in_.ConsumeIntegralInRange<int>(0, kinds - 1)) {
      case 0: return band(Kind::Causal);
      case 1: return band(Kind::Window);
      case 2: return band(Kind::Prefix);
      case 3: return lengths(true);
      case 4: return lengths(false);
      case 5: return alibi_part();
      case 6: return dense(Reading::Keep);
      case 7: return dense(Reading::Block);
      case 8: return dense(Reading::Bias);
      case 9: return docs();
      case 10: return predicate_part();
      case 11: return torch_mha();
      default: return other_adapter();
    }
  }

 private:
  enum class Kind { Causal, Window, Prefix };

  // Rarely true: make this parameter invalid.
  bool spoil() {
    if (in_.ConsumeIntegral<uint8_t>() >= 4) return false;
    invalid_ = true;
    return true;
  }

  Align align() { return in_.ConsumeBool() ? Align::TopLeft : Align::BottomRight; }

  // A window width or prefix: small, unbounded, near Lq + Lk, or any int64.
  int64_t extent() {
    switch (in_.ConsumeIntegralInRange<int>(0, 5)) {
      case 0: return kUnbounded;
      case 1: {
        const int64_t sum =
            s_.q_len > kInt64Max - 4 - s_.k_len ? kInt64Max - 4 : s_.q_len + s_.k_len;
        return sum + in_.ConsumeIntegralInRange(0, 3);
      }
      case 2: return in_.ConsumeIntegralInRange<int64_t>(0, kInt64Max);
      default: return in_.ConsumeIntegralInRange<int64_t>(0, 6);
    }
  }

  Part band(Kind kind) {
    const Align a = align();
    int64_t left = kUnbounded, right = 0, prefix = 0;
    Mask m;
    if (kind == Kind::Causal) {
      m = causal(a);
    } else if (kind == Kind::Window) {
      left = extent(), right = extent();
      if (spoil()) left = -1 - in_.ConsumeIntegralInRange<int64_t>(0, kInt64Max - 1);
      if (spoil()) right = -1 - in_.ConsumeIntegralInRange<int64_t>(0, 5);
      m = sliding_window(left, right, a);
    } else {
      prefix = extent();
      if (spoil()) prefix = -1 - in_.ConsumeIntegralInRange<int64_t>(0, 5);
      m = prefix_lm(prefix, a);
    }
    const __int128 offset = a == Align::TopLeft ? 0 : __int128(s_.k_len) - s_.q_len;
    auto rule = [=](int64_t, int64_t, int64_t i, int64_t j) -> std::optional<double> {
      const __int128 d = __int128(j) - i - offset;  // distance from the aligned diagonal
      const bool ok = j < prefix || ((left == kUnbounded || d >= -__int128(left)) &&
                                     (right == kUnbounded || d <= __int128(right)));
      return ok ? std::optional<double>(0.0) : std::nullopt;
    };
    return {m, rule, 0.0};
  }

  Part lengths(bool keys) {
    const int64_t limit = keys ? s_.k_len : s_.q_len;
    int64_t count = std::min<int64_t>(s_.batch, 64);
    if (spoil()) count = count == 0 || in_.ConsumeBool() ? count + 1 : count - 1;
    std::vector<int64_t> lens;
    for (int64_t b = 0; b < std::max<int64_t>(count, 0); ++b) {
      const int64_t pick = in_.ConsumeIntegralInRange<int>(0, 3);
      lens.push_back(pick == 0   ? limit
                     : pick == 1 ? 0
                                 : in_.ConsumeIntegralInRange<int64_t>(0, limit));
    }
    if (!lens.empty() && spoil())
      lens[lens.size() - 1] = in_.ConsumeBool() ? -1 : (limit == kInt64Max ? -2 : limit + 1);
    const Mask m = keys ? key_lengths(lens) : query_lengths(lens);
    auto rule = [lens, keys](int64_t b, int64_t, int64_t i, int64_t j) -> std::optional<double> {
      const int64_t x = keys ? j : i;
      return x < lens[static_cast<std::size_t>(b)] ? std::optional<double>(0.0) : std::nullopt;
    };
    return {m, rule, 0.0};
  }

  float slope() {
    switch (in_.ConsumeIntegralInRange<int>(0, 9)) {
      case 0: return 0.0f;
      case 1: return 1e30f;
      case 2: return kFloatMax;
      case 3: return -kFloatMax;
      case 4: return -0.5f;
      case 5: return 1e-30f;
      default: return 0.125f * static_cast<float>(in_.ConsumeIntegralInRange<int>(1, 64));
    }
  }

  Part alibi_part() {
    std::vector<float> slopes;
    const int64_t heads = std::min<int64_t>(s_.heads, 64);
    if (heads > 0 && in_.ConsumeBool()) {
      slopes = alibi_slopes(heads);
    } else {
      for (int64_t h = 0; h < heads; ++h) slopes.push_back(slope());
    }
    if (spoil()) slopes.push_back(0.25f);  // one slope too many
    if (!slopes.empty() && spoil())
      slopes[0] = in_.ConsumeBool() ? std::numeric_limits<float>::quiet_NaN()
                                    : std::numeric_limits<float>::infinity();
    const Align a = align();
    const Mask m = alibi(slopes, a);
    const __int128 offset = a == Align::TopLeft ? 0 : __int128(s_.k_len) - s_.q_len;
    double magnitude = 0.0;
    for (float x : slopes)
      if (std::isfinite(x))
        magnitude =
            std::max(magnitude, std::fabs(double(x)) * (double(s_.q_len) + double(s_.k_len)));
    auto rule = [slopes, offset](int64_t, int64_t h, int64_t i,
                                 int64_t j) -> std::optional<double> {
      const __int128 d = __int128(i) + offset - j;
      const double dist = static_cast<double>(d < 0 ? -d : d);
      return -double(slopes[static_cast<std::size_t>(h)]) * dist;
    };
    return {m, rule, magnitude};
  }

  // A size for a dense dim of full size n: n, 1 (broadcast) or, spoilt, one
  // that fits neither.
  int64_t dim(int64_t n) {
    if (spoil()) return std::max<int64_t>(n, 1) + 1;
    return huge_ || in_.ConsumeIntegralInRange<int>(0, 3) == 0 ? 1 : n;
  }

  double bias_value(DType dtype) {
    const int pick = in_.ConsumeIntegralInRange<int>(0, 15);
    switch (pick) {
      case 0:
      case 1: return -std::numeric_limits<double>::infinity();
      case 2: return -3e38;
      case 3: return 3e38;
      case 4: return dtype == DType::Float64 ? 1e-300 : 0.0;
      default: return 0.25 * (pick - 10);
    }
  }

  void fill(DenseTensor& t, Reading reading, DType dtype) {
    std::vector<double>& v = t.values();
    const int density = in_.ConsumeIntegralInRange<int>(0, 4);  // all, most, half, few, none
    for (double& x : v) {
      const bool on = density == 0   ? true
                      : density == 4 ? false
                                     : in_.ConsumeIntegralInRange<int>(0, 3) >= density;
      if (reading == Reading::Bias || reading == Reading::HfAdditive)
        x = on ? (in_.ConsumeBool() ? 0.0 : bias_value(dtype))
               : -std::numeric_limits<double>::infinity();
      else
        x = on ? 1.0 : 0.0;
    }
    if (reading == Reading::HfAdditive)
      for (double& x : v)
        if (x == -3e38) x = std::numeric_limits<float>::lowest();
    const bool additive = reading == Reading::Bias || reading == Reading::HfAdditive;
    if (!v.empty() && (additive || dtype != DType::Bool) && spoil()) {
      double& x = v[v.size() / 2];
      if (additive)
        x = in_.ConsumeBool() ? std::numeric_limits<double>::quiet_NaN()
                              : std::numeric_limits<double>::infinity();
      else
        x = 2.0;  // neither 0 nor 1
    }
  }

  // keep / block / bias in one of the documented layouts.
  Part dense(Reading reading) {
    std::vector<int64_t> shape;
    std::vector<Role> roles;
    Dims2 dims2 = Dims2::QueryKey;
    switch (in_.ConsumeIntegralInRange<int>(0, 4)) {
      case 0: shape = {dim(s_.k_len)}, roles = {Role::Key}; break;
      case 1: shape = {dim(s_.q_len), dim(s_.k_len)}, roles = {Role::Query, Role::Key}; break;
      case 2:
        shape = {dim(s_.batch), dim(s_.k_len)}, roles = {Role::Batch, Role::Key};
        dims2 = Dims2::BatchKey;
        break;
      case 3: {
        const int64_t x = in_.ConsumeIntegralInRange<int>(0, 2);
        int64_t first = x == 0 ? s_.batch * s_.heads : x == 1 ? s_.batch : 1;
        if (spoil()) first = std::max({s_.batch * s_.heads, s_.batch, int64_t{1}}) + 1;
        shape = {first, dim(s_.q_len), dim(s_.k_len)};
        roles = {Role::Slices3, Role::Query, Role::Key};
        break;
      }
      default:
        shape = {dim(s_.batch), dim(s_.heads), dim(s_.q_len), dim(s_.k_len)};
        roles = {Role::Batch, Role::Head, Role::Query, Role::Key};
        break;
    }
    DType dtype = reading == Reading::Bias ? (in_.ConsumeBool() ? DType::Float32 : DType::Float64)
                                           : DType::Bool;
    if (spoil()) dtype = reading == Reading::Bias ? DType::Bool : DType::Float32;
    DenseTensor t(shape, roles, dtype, reading);
    fill(t, reading, dtype);
    const AnyView view = t.view(in_.ConsumeBool());
    const Mask m = reading == Reading::Keep    ? keep(view, dims2)
                   : reading == Reading::Block ? block(view, dims2)
                                               : bias(view, dims2);
    return {m, t.rule(s_), t.magnitude()};
  }

  // Ids of length len: (len) or (B, len), few distinct values or extreme ones,
  // sorted or not.
  DenseTensor ids(int64_t len, bool rows_b) {
    const bool two = rows_b || in_.ConsumeBool();
    int64_t rows = rows_b ? s_.batch : 1;
    if (two && spoil()) rows = s_.batch + 2;
    if (spoil()) len += 1;
    const DType dtype = spoil() ? DType::Float32 : in_.ConsumeBool() ? DType::Int64 : DType::Int32;
    DenseTensor t(
        two ? std::vector<int64_t>{rows, len} : std::vector<int64_t>{len},
        two ? std::vector<Role>{Role::Batch, Role::Query} : std::vector<Role>{Role::Query}, dtype,
        Reading::Keep);
    const int64_t ndoc = in_.ConsumeIntegralInRange<int64_t>(1, 4);
    const bool extreme = dtype == DType::Int64 && in_.ConsumeBool();
    for (double& x : t.values()) {
      const int64_t id = in_.ConsumeIntegralInRange<int64_t>(0, ndoc - 1);
      x = extreme ? (id == 0 ? -9.2e18 : id == 1 ? 9.2e18 : static_cast<double>(id)) : double(id);
    }
    if (in_.ConsumeBool())
      for (int64_t r = 0; r < (two ? rows : 1); ++r)
        std::sort(t.values().begin() + r * len, t.values().begin() + (r + 1) * len);
    return t;
  }

  Part docs() {
    const bool self = in_.ConsumeBool();
    if (self && s_.q_len != s_.k_len) invalid_ = true;
    auto q = std::make_shared<DenseTensor>(ids(s_.q_len, in_.ConsumeBool()));
    auto k = self ? q : std::make_shared<DenseTensor>(ids(s_.k_len, in_.ConsumeBool()));
    const AnyView qv = q->view(in_.ConsumeBool());
    const Mask m = self ? documents(qv) : documents(qv, k->view(in_.ConsumeBool()));
    auto id = [](const DenseTensor& t, int64_t b, int64_t x) {
      const int64_t len = t.shape().back();
      return t.values()[static_cast<std::size_t>(
          (t.shape().size() == 2 && t.shape()[0] != 1 ? b * len : 0) + x)];
    };
    auto rule = [q, k, id](int64_t b, int64_t, int64_t i, int64_t j) -> std::optional<double> {
      return static_cast<int64_t>(id(*q, b, i)) == static_cast<int64_t>(id(*k, b, j))
                 ? std::optional<double>(0.0)
                 : std::nullopt;
    };
    return {m, rule, 0.0};
  }

  Part predicate_part() {
    auto bits = std::make_shared<std::vector<uint8_t>>();
    const int64_t n = s_.batch * s_.heads * s_.q_len * s_.k_len;
    const int density = in_.ConsumeIntegralInRange<int>(0, 3);
    for (int64_t k = 0; k < n; ++k)
      bits->push_back(density == 0 ? 1 : density == 1 ? 0 : in_.ConsumeBool() ? 1 : 0);
    const MaskShape s = s_;
    auto index = [s](int64_t b, int64_t h, int64_t i, int64_t j) {
      return static_cast<std::size_t>(((b * s.heads + h) * s.q_len + i) * s.k_len + j);
    };
    const Mask m = predicate([bits, index](int64_t b, int64_t h, int64_t i,
                                           int64_t j) { return (*bits)[index(b, h, i, j)] != 0; },
                             "fuzzed");
    auto rule = [bits, index](int64_t b, int64_t h, int64_t i, int64_t j) -> std::optional<double> {
      return (*bits)[index(b, h, i, j)] ? std::optional<double>(0.0) : std::nullopt;
    };
    return {m, rule, 0.0};
  }

  // from_torch_mha_mask: attn_mask (L, S) or (B*num_heads, L, S), bool
  // (true = masked) or float additive; key_padding_mask (B, S).
  Part torch_mha() {
    std::vector<PartRule> rules;
    double magnitude = 0.0;
    std::vector<std::shared_ptr<DenseTensor>> keep_alive;
    AnyView attn, kpm;
    int64_t num_heads = 0;
    auto dtype = [&] {
      const int x = in_.ConsumeIntegralInRange<int>(0, 2);
      return x == 0 ? DType::Bool : x == 1 ? DType::Float32 : DType::Float64;
    };
    if (in_.ConsumeBool()) {
      const DType dt = spoil() ? DType::Int64 : dtype();
      const Reading r = dt == DType::Bool ? Reading::Block : Reading::Bias;
      std::shared_ptr<DenseTensor> t;
      if (in_.ConsumeBool()) {
        t = std::make_shared<DenseTensor>(std::vector<int64_t>{dim(s_.q_len), dim(s_.k_len)},
                                          std::vector<Role>{Role::Query, Role::Key}, dt, r);
      } else {
        num_heads = in_.ConsumeBool() ? s_.heads : 1;
        const int64_t nb = in_.ConsumeBool() ? s_.batch : 1;
        int64_t first = nb * num_heads;
        if (spoil() || num_heads == 0) num_heads = 0, invalid_ = true;
        if (num_heads > 1 && spoil()) first += 1;  // not divisible by num_heads
        t = std::make_shared<DenseTensor>(std::vector<int64_t>{first, dim(s_.q_len), dim(s_.k_len)},
                                          std::vector<Role>{Role::TorchBH, Role::Query, Role::Key},
                                          dt, r);
        t->set_torch_heads(std::max<int64_t>(num_heads, 1));
        // (B*nh, L, S) read as (B, nh, L, S): nh must be 1 or H, B 1 or B.
        if (num_heads != 0 && first % num_heads == 0 &&
            ((num_heads != 1 && num_heads != s_.heads) ||
             (first / num_heads != 1 && first / num_heads != s_.batch)))
          invalid_ = true;
      }
      fill(*t, r, dt);
      attn = t->view(in_.ConsumeBool());
      rules.push_back(t->rule(s_));
      magnitude += t->magnitude();
      keep_alive.push_back(t);
    }
    if (in_.ConsumeBool()) {
      const DType dt = dtype();
      const Reading r = dt == DType::Bool ? Reading::Block : Reading::Bias;
      auto t = std::make_shared<DenseTensor>(std::vector<int64_t>{dim(s_.batch), dim(s_.k_len)},
                                             std::vector<Role>{Role::Batch, Role::Key}, dt, r);
      fill(*t, r, dt);
      kpm = t->view(in_.ConsumeBool());
      rules.push_back(t->rule(s_));
      magnitude += t->magnitude();
      keep_alive.push_back(t);
    }
    const Mask m = from_torch_mha_mask(attn, kpm, num_heads);
    return {m, all_of(std::move(rules)), magnitude};
  }

  // sdpa / onnx (right-aligned rank 1..4, bool keep or float bias, causal),
  // hf (rank 2 (B, S) 0/1, or rank 4 additive / 0/1), keras ((B, T, S) 0/1).
  Part other_adapter() {
    const int which = in_.ConsumeIntegralInRange<int>(0, 3);
    std::vector<PartRule> rules;
    std::shared_ptr<DenseTensor> t;
    const bool with_tensor = which >= 2 || in_.ConsumeBool();
    bool causal_too = in_.ConsumeBool();
    if (with_tensor) {
      std::vector<int64_t> shape;
      std::vector<Role> roles;
      DType dt = DType::Bool;
      Reading r = Reading::Keep;
      const int x = in_.ConsumeIntegralInRange<int>(0, 2);
      const DType any = x == 0 ? DType::Bool : x == 1 ? DType::Float32 : DType::Float64;
      if (which <= 1) {  // sdpa, onnx
        const int rank = in_.ConsumeIntegralInRange<int>(1, 4);
        const std::vector<int64_t> full{s_.batch, s_.heads, s_.q_len, s_.k_len};
        const std::vector<Role> all{Role::Batch, Role::Head, Role::Query, Role::Key};
        for (int d = 4 - rank; d < 4; ++d) shape.push_back(dim(full[d])), roles.push_back(all[d]);
        dt = any;
        r = dt == DType::Bool ? Reading::Keep : Reading::Bias;
      } else if (which == 2) {  // hf
        dt = in_.ConsumeBool() ? any : DType::Int64;
        if (in_.ConsumeBool()) {
          shape = {dim(s_.batch), dim(s_.k_len)}, roles = {Role::Batch, Role::Key};
          r = Reading::Keep;
        } else {
          shape = {dim(s_.batch), dim(s_.heads), dim(s_.q_len), dim(s_.k_len)};
          roles = {Role::Batch, Role::Head, Role::Query, Role::Key};
          r = dt == DType::Float32 || dt == DType::Float64 ? Reading::HfAdditive : Reading::Keep;
        }
      } else {  // keras: (B, T, S), 0/1 in any dtype
        dt = in_.ConsumeBool() ? any : DType::Int64;
        shape = {dim(s_.batch), dim(s_.q_len), dim(s_.k_len)};
        roles = {Role::Batch, Role::Query, Role::Key};
      }
      if (which == 0 && causal_too && !spoil()) causal_too = false;  // sdpa: one or the other
      t = std::make_shared<DenseTensor>(shape, roles, dt, r);
      fill(*t, r, dt);
      rules.push_back(t->rule(s_));
    }
    const AnyView view = t ? t->view(in_.ConsumeBool()) : AnyView();
    Mask m;
    switch (which) {
      case 0: m = from_sdpa_mask(view, causal_too); break;
      case 1: m = from_onnx_attention_mask(view, causal_too); break;
      case 2: m = from_hf_attention_mask(view), causal_too = false; break;
      default: m = from_keras_mask(view, causal_too); break;
    }
    if (causal_too)
      rules.push_back([](int64_t, int64_t, int64_t i, int64_t j) -> std::optional<double> {
        return j <= i ? std::optional<double>(0.0) : std::nullopt;
      });
    return {m, all_of(std::move(rules)), t ? t->magnitude() : 0.0};
  }

  static PartRule all_of(std::vector<PartRule> rules) {
    return [rules = std::move(rules)](int64_t b, int64_t h, int64_t i,
                                      int64_t j) -> std::optional<double> {
      double sum = 0.0;
      for (const PartRule& r : rules) {
        const std::optional<double> x = r(b, h, i, j);
        if (!x) return std::nullopt;
        sum = saturate(sum + saturate(*x));
      }
      return sum;
    };
  }

  FuzzedDataProvider& in_;
  MaskShape s_;
  bool huge_;
  bool invalid_ = false;
};

// The value of the combined mask at (b, h, i, j): -inf if a part masks, else
// the parts' biases added in order, each step saturated to float's range.
float combined(const std::vector<Part>& parts, int64_t b, int64_t h, int64_t i, int64_t j) {
  float acc = 0.0f;
  for (const Part& p : parts) {
    const std::optional<double> x = p.rule(b, h, i, j);
    if (!x) return kNegInf;
    acc = saturate(double(acc) + double(saturate(*x)));
  }
  return acc;
}

std::string where(const Mask& m, const MaskShape& s) {
  return m.describe() + " of " + oracle::shape_text(s);
}

void check_result(const ::testing::AssertionResult& r) {
  if (!r) finding(r.message());
}

TileClass count_class(const std::vector<Part>& parts, int64_t b, int64_t h, int64_t q0, int64_t q1,
                      int64_t k0, int64_t k1) {
  int64_t n = 0;
  for (int64_t i = q0; i < q1; ++i)
    for (int64_t j = k0; j < k1; ++j) n += combined(parts, b, h, i, j) != kNegInf;
  return n == 0                       ? TileClass::Empty
         : n == (q1 - q0) * (k1 - k0) ? TileClass::Full
                                      : TileClass::Partial;
}

// Shapes small enough to materialize: everything checked against materialize().
void check_small(FuzzedDataProvider& in, const Mask& mask, const std::vector<Part>& parts,
                 const MaskShape& s) {
  const BoundMask bound = mask.bind(s);
  double magnitude = 1.0;
  for (const Part& p : parts) magnitude += p.magnitude;
  check_result(oracle::matches_rule(
      mask, s,
      [&](int64_t b, int64_t h, int64_t i, int64_t j) { return combined(parts, b, h, i, j); },
      4e-6f * static_cast<float>(std::min<double>(magnitude, kFloatMax))));
  const Tensor<float> m = mask.materialize(s.batch, s.heads, s.q_len, s.k_len);
  const View<const float, 4> v = m.view<4>();
  // classify() on the grids of a few tile sizes and, when cheap, every rectangle.
  std::vector<std::pair<int64_t, int64_t>> tiles;
  for (int t = in.ConsumeIntegralInRange<int>(1, 3); t > 0; --t)
    tiles.emplace_back(in.ConsumeIntegralInRange<int64_t>(1, 70),
                       in.ConsumeIntegralInRange<int64_t>(1, 70));
  const bool all_rects = s.batch * s.heads * s.q_len * s.q_len * s.k_len * s.k_len <= 6000;
  check_result(oracle::classify_exact(mask, s, tiles, all_rects));
  if (s.batch == 0 || s.heads == 0 || s.q_len == 0 || s.k_len == 0) return;
  // tile_values (key-major) and value() against materialize(), on tiles
  // starting and ending anywhere.
  for (int t = in.ConsumeIntegralInRange<int>(1, 4); t > 0; --t) {
    const int64_t b = in.ConsumeIntegralInRange<int64_t>(0, s.batch - 1);
    const int64_t h = in.ConsumeIntegralInRange<int64_t>(0, s.heads - 1);
    int64_t q0 = in.ConsumeIntegralInRange<int64_t>(0, s.q_len - 1);
    int64_t q1 = in.ConsumeIntegralInRange<int64_t>(q0 + 1, s.q_len);
    int64_t k0 = in.ConsumeIntegralInRange<int64_t>(0, s.k_len - 1);
    int64_t k1 = in.ConsumeIntegralInRange<int64_t>(k0 + 1, s.k_len);
    const int64_t ld = (q1 - q0) + in.ConsumeIntegralInRange<int64_t>(0, 3);
    std::vector<float> tile(static_cast<std::size_t>((k1 - k0) * ld), 12345.0f);
    bound.tile_values(b, h, q0, q1, k0, k1, tile.data(), ld);
    for (int64_t j = k0; j < k1; ++j)
      for (int64_t i = q0; i < q1; ++i) {
        const float got = tile[static_cast<std::size_t>((j - k0) * ld + (i - q0))];
        const float want = v(b, h, i, j);
        if (!(got == want))
          finding(where(mask, s) + ": tile_values(" + std::to_string(b) + ", " + std::to_string(h) +
                  ", q [" + std::to_string(q0) + ", " + std::to_string(q1) + ") x k [" +
                  std::to_string(k0) + ", " + std::to_string(k1) + ")) at (" + std::to_string(i) +
                  ", " + std::to_string(j) + ") is " + std::to_string(got) +
                  ", materialize() says " + std::to_string(want));
      }
    const float x = bound.value(b, h, q0, k0);
    if (!(x == v(b, h, q0, k0)) || bound.allowed(b, h, q0, k0) != (x != kNegInf))
      finding(where(mask, s) + ": value()/allowed() at (" + std::to_string(b) + ", " +
              std::to_string(h) + ", " + std::to_string(q0) + ", " + std::to_string(k0) +
              ") differ from materialize()");
  }
}

// Huge shapes (index-computed parts only): small tiles anywhere against the
// rules, and large tiles consistent with the small ones inside them.
void check_huge(FuzzedDataProvider& in, const Mask& mask, const std::vector<Part>& parts,
                const MaskShape& s) {
  const BoundMask bound = mask.bind(s);
  if (s.batch == 0 || s.heads == 0 || s.q_len == 0 || s.k_len == 0) return;
  auto pos = [&](int64_t len) {
    switch (in.ConsumeIntegralInRange<int>(0, 3)) {
      case 0: return int64_t{0};
      case 1: return len - 1 - in.ConsumeIntegralInRange<int64_t>(0, std::min<int64_t>(len - 1, 8));
      default: return in.ConsumeIntegralInRange<int64_t>(0, len - 1);
    }
  };
  for (int t = in.ConsumeIntegralInRange<int>(1, 8); t > 0; --t) {
    const int64_t b = in.ConsumeIntegralInRange<int64_t>(0, s.batch - 1);
    const int64_t h = in.ConsumeIntegralInRange<int64_t>(0, s.heads - 1);
    const int64_t q0 = pos(s.q_len), k0 = pos(s.k_len);
    const int64_t q1 =
        q0 + std::min<int64_t>(s.q_len - q0, in.ConsumeIntegralInRange<int64_t>(1, 6));
    const int64_t k1 =
        k0 + std::min<int64_t>(s.k_len - k0, in.ConsumeIntegralInRange<int64_t>(1, 6));
    const TileClass want = count_class(parts, b, h, q0, q1, k0, k1);
    const TileClass got = bound.classify(b, h, q0, q1, k0, k1);
    const std::string tile = "(b, h) = (" + std::to_string(b) + ", " + std::to_string(h) +
                             "), tile q [" + std::to_string(q0) + ", " + std::to_string(q1) +
                             ") x k [" + std::to_string(k0) + ", " + std::to_string(k1) + ")";
    if (got != want)
      finding(where(mask, s) + ", " + tile + ": classify says " + oracle::class_name(got) +
              ", the rules say " + oracle::class_name(want));
    std::vector<float> row(static_cast<std::size_t>(k1 - k0));
    for (int64_t i = q0; i < q1; ++i) {
      bound.row_values(b, h, i, k0, k1, row.data());
      for (int64_t j = k0; j < k1; ++j) {
        const float w = combined(parts, b, h, i, j), g = row[static_cast<std::size_t>(j - k0)];
        const bool ok = w == kNegInf ? g == kNegInf
                                     : std::isfinite(g) && std::fabs(double(g) - w) <=
                                                               1e-5 * (1.0 + std::fabs(double(w)));
        if (!ok)
          finding(where(mask, s) + ": row_values at (" + std::to_string(i) + ", " +
                  std::to_string(j) + ") is " + std::to_string(g) + ", the rules say " +
                  std::to_string(w));
      }
    }
    // A tile enclosing this one: never Empty around an allowed element, never
    // Full around a masked one.
    // With several parts, classify() may scan the tile element by element
    // (two partial parts can exclude each other everywhere): up to 256 x 256
    // then. One part classifies any tile in O(1).
    const int64_t reach = parts.size() <= 1 ? kInt64Max : 256;
    const int64_t bq0 = in.ConsumeIntegralInRange<int64_t>(std::max<int64_t>(0, q1 - reach), q0);
    const int64_t bq1 = in.ConsumeIntegralInRange<int64_t>(q1, q0 + std::min(reach, s.q_len - q0));
    const int64_t bk0 = in.ConsumeIntegralInRange<int64_t>(std::max<int64_t>(0, k1 - reach), k0);
    const int64_t bk1 = in.ConsumeIntegralInRange<int64_t>(k1, k0 + std::min(reach, s.k_len - k0));
    const TileClass big = bound.classify(b, h, bq0, bq1, bk0, bk1);
    if ((big == TileClass::Empty && want != TileClass::Empty) ||
        (big == TileClass::Full && want != TileClass::Full))
      finding(where(mask, s) + ": tile q [" + std::to_string(bq0) + ", " + std::to_string(bq1) +
              ") x k [" + std::to_string(bk0) + ", " + std::to_string(bk1) + ") is " +
              oracle::class_name(big) + " but its " + tile + " is " + oracle::class_name(want));
  }
}

// A negative size must be an Error from bind() and materialize().
void check_negative_shape(FuzzedDataProvider& in) {
  MaskShape s{1, 1, 1, 1};
  int64_t* dims[] = {&s.batch, &s.heads, &s.q_len, &s.k_len};
  *dims[in.ConsumeIntegralInRange<int>(0, 3)] =
      in.ConsumeIntegralInRange<int64_t>(std::numeric_limits<int64_t>::min(), -1);
  for (const Mask& m : {Mask(), causal(Align::BottomRight), sliding_window(2, 1)}) {
    try {
      m.bind(s);
      finding(where(m, s) + ": bound to a negative shape without an Error");
    } catch (const Error&) {
    }
    try {
      m.materialize(s.batch, s.heads, s.q_len, s.k_len);
      finding(where(m, s) + ": materialized with a negative shape without an Error");
    } catch (const Error&) {
    }
  }
}

void run(const uint8_t* data, size_t size) {
  FuzzedDataProvider in(data, size);
  if (in.ConsumeIntegralInRange<int>(0, 31) == 0) return check_negative_shape(in);
  const bool huge = in.ConsumeIntegralInRange<int>(0, 7) == 0;
  MaskShape s;
  if (huge) {
    s = {in.ConsumeIntegralInRange<int64_t>(0, 2), in.ConsumeIntegralInRange<int64_t>(0, 2),
         in.ConsumeIntegralInRange<int64_t>(0, kInt64Max),
         in.ConsumeIntegralInRange<int64_t>(0, kInt64Max)};
  } else {
    s = {in.ConsumeIntegralInRange<int64_t>(0, 3), in.ConsumeIntegralInRange<int64_t>(0, 4),
         in.ConsumeIntegralInRange<int64_t>(0, 40), in.ConsumeIntegralInRange<int64_t>(0, 40)};
  }
  PartMaker maker(in, s, huge);
  Mask mask;
  std::vector<Part> parts;
  try {
    for (int n = in.ConsumeIntegralInRange<int>(0, 4); n > 0; --n) {
      parts.push_back(maker.make());
      mask &= parts.back().mask;
    }
    (void)mask.describe();
    mask.bind(s);
  } catch (const Error& e) {
    // Invalid parameters: an Error is the right answer. Valid ones must work.
    if (!maker.invalid())
      finding(where(mask, s) + " + a part not built: valid parameters rejected: " + e.what());
    return;
  }
  if (maker.invalid())
    finding(where(mask, s) + ": built and bound from an invalid parameter without an Error");
  if (huge)
    check_huge(in, mask, parts, s);
  else
    check_small(in, mask, parts, s);
}

}  // namespace
}  // namespace maskattn

extern "C" int LLVMFuzzerTestOneInput(const uint8_t* data, size_t size) {
  maskattn::run(data, size);
  return 0;
}
