// check_model_leaks(): a sequence model run on token ids as given, then with
// the tokens at hidden positions replaced (leak_search.hpp says which).
#include <fmt/format.h>

#include <cmath>
#include <random>
#include <string>
#include <vector>

#include "leak/leak_search.hpp"
#include "maskattn/leak_check.hpp"

namespace maskattn {
namespace {

void check_options(const ModelLeakOptions& opts) {
  if (opts.vocab_size < 2)
    throw Error("opts.vocab_size", "a vocabulary of >= 2 ids (a token must have another value)",
                std::to_string(opts.vocab_size));
  detail::check_search_options(opts.tolerance, opts.max_listed);
}

// model(tokens), checked to be (B, L_out, ...) and, after the first call,
// the first call's shape.
Tensor<float> call_model(const SequenceModel& model, const Tensor<int64_t>& tokens,
                         const std::vector<int64_t>& want) {
  Tensor<float> out = model(tokens.view<2>());
  if (want.empty()) {
    if (out.rank() < 2 || out.size(0) != tokens.size(0) || out.size(1) < 1 ||
        out.numel() / (out.size(0) * out.size(1)) < 1)
      throw Error("model output",
                  fmt::format("(B, L_out, ...) with B = {}, L_out >= 1 and at least one value "
                              "per position",
                              tokens.size(0)),
                  out.rank() == 0 ? std::string("nothing") : shape_string(out.shape()));
  } else if (out.shape() != want) {
    throw Error("model output", fmt::format("the same shape on every call, {}", shape_string(want)),
                shape_string(out.shape()));
  }
  return out;
}

// The unperturbed outputs must be finite: a NaN (or infinite) output stays
// NaN (infinite) whatever the tokens, so a dependence through it could never
// show, and "no leak" would claim what was not seen.
void check_finite(const Tensor<float>& base) {
  const int64_t per_row = base.numel() / (base.size(0) * base.size(1));
  for (int64_t k = 0; k < base.numel(); ++k) {
    if (std::isfinite(base.data()[k])) continue;
    const int64_t row = k / per_row;
    throw Error("model output",
                "finite values on the tokens as given (a NaN or infinite output cannot show "
                "whether it depends on a token)",
                fmt::format("{} at (b, i) = ({}, {})", base.data()[k], row / base.size(1),
                            row % base.size(1)));
  }
}

}  // namespace

LeakReport check_model_leaks(const SequenceModel& model, View<const int64_t, 2> tokens,
                             const Mask& expect, const ModelLeakOptions& opts) {
  if (!model) throw Error("model", "a function of token ids", "an empty std::function");
  if (tokens.empty() || tokens.size(0) < 1 || tokens.size(1) < 1)
    throw Error("tokens", "token ids (B, L) with B, L >= 1",
                tokens.empty() ? std::string("nothing") : shape_string(tokens.shape()));
  check_options(opts);
  const int64_t B = tokens.size(0), L_in = tokens.size(1);
  Tensor<int64_t> ids({B, L_in}), perturbed({B, L_in});
  std::mt19937_64 rng(opts.seed);
  std::uniform_int_distribution<int64_t> shift(1, opts.vocab_size - 1);
  for (int64_t b = 0; b < B; ++b)
    for (int64_t j = 0; j < L_in; ++j) {
      const int64_t t = tokens(b, j);
      if (t < 0 || t >= opts.vocab_size)
        throw Error("tokens", fmt::format("ids in [0, {}) (opts.vocab_size)", opts.vocab_size),
                    fmt::format("{} at (b, j) = ({}, {})", t, b, j));
      ids.data()[b * L_in + j] = t;
      perturbed.data()[b * L_in + j] = (t + shift(rng)) % opts.vocab_size;  // never t
    }

  const Tensor<float> base = call_model(model, ids, {});
  check_finite(base);
  const int64_t L_out = base.size(1), per_row = base.numel() / (B * L_out);
  const MaskShape shape{B, 1, L_out, L_in};
  const BoundMask bound = detail::bind_named(expect, shape, "expect");

  LeakReport report;
  report.shape = shape;
  report.tolerance = opts.tolerance;
  report.model = true;
  report.runs = 1;

  // Output rows the expectation leaves empty are not checked.
  std::vector<bool> checked(static_cast<std::size_t>(B * L_out));
  for (int64_t b = 0; b < B; ++b)
    for (int64_t i = 0; i < L_out; ++i)
      checked[static_cast<std::size_t>(b * L_out + i)] =
          bound.classify(b, 0, i, i + 1, 0, L_in) != TileClass::Empty;

  std::vector<float> row;
  detail::LeakSearch s;
  s.lanes = B, s.rows = L_out, s.keys = L_in;
  s.tolerance = opts.tolerance;
  s.max_listed = opts.max_listed;
  s.lane_index = [](int64_t lane) { return std::pair<int64_t, int64_t>{lane, 0}; };
  s.hidden = [&](int64_t b, int64_t i, detail::KeyRange r) -> int64_t {
    if (!checked[static_cast<std::size_t>(b * L_out + i)]) return 0;
    return detail::count_hidden(bound, b, 0, i, r, row);
  };
  Tensor<int64_t> input = ids;
  s.run = [&](std::span<const detail::KeyRange> ranges, std::span<float> change) {
    for (int64_t b = 0; b < B; ++b) {
      const detail::KeyRange r = ranges[static_cast<std::size_t>(b)];
      for (int64_t j = r.begin; j < r.end; ++j)
        input.data()[b * L_in + j] = perturbed.data()[b * L_in + j];
    }
    const Tensor<float> out = call_model(model, input, base.shape());
    for (int64_t b = 0; b < B; ++b) {
      const detail::KeyRange r = ranges[static_cast<std::size_t>(b)];
      for (int64_t j = r.begin; j < r.end; ++j)
        input.data()[b * L_in + j] = ids.data()[b * L_in + j];
    }
    for (int64_t r = 0; r < B * L_out; ++r)
      change[static_cast<std::size_t>(r)] =
          detail::row_change(out.data() + r * per_row, base.data() + r * per_row, per_row);
  };
  detail::search_leaks(s, report);
  return report;
}

}  // namespace maskattn
