// Bad-input matrix rows (bad_input_matrix.hpp) of the core headers: error,
// tensor, bfloat16, attention, mask, positional, mlm, leak_check.
#include <gtest/gtest.h>

#include <cmath>
#include <cstdint>
#include <vector>

#include "api/bad_input_matrix.hpp"
#include "maskattn/attention.hpp"
#include "maskattn/bfloat16.hpp"
#include "maskattn/error.hpp"
#include "maskattn/leak_check.hpp"
#include "maskattn/mask.hpp"
#include "maskattn/mlm.hpp"
#include "maskattn/positional.hpp"
#include "maskattn/tensor.hpp"

namespace maskattn::testing_bad_input {
namespace {

// A valid attention problem (B, H, L, D) = (2, 2, 3, 4) for rows to break.
struct Problem {
  int64_t b, h, lq, lk, d;
  Tensor<float> q, k, v, out, weights, lse;
  Problem(int64_t b_ = 2, int64_t h_ = 2, int64_t lq_ = 3, int64_t lk_ = 3, int64_t d_ = 4)
      : b(b_),
        h(h_),
        lq(lq_),
        lk(lk_),
        d(d_),
        q({b, h, lq, d}),
        k({b, h, lk, d}),
        v({b, h, lk, d}),
        out({b, h, lq, d}),
        weights({b, h, lq, lk}),
        lse({b, h, lq}) {
    float x = 0.1f;
    for (Tensor<float>* t : {&q, &k, &v})
      for (float& e : *t) e = x = std::fmod(x * 7.3f + 0.37f, 2.0f) - 1.0f;
    for (float& e : out) e = -7.0f;
  }
  void run(const Mask& m = {}, AttentionOptions o = {}) {
    attention(q.view<4>(), k.view<4>(), v.view<4>(), out.view<4>(), m, o, weights.view<4>(),
              lse.view<3>());
  }
};

AttentionOptions on(Backend backend) {
  AttentionOptions o;
  o.backend = backend;
  return o;
}

std::vector<Case> attention_rows() {
  const std::string hdr = "attention.hpp";
  std::vector<Case> r = {
      covered(hdr, "attention", Dims, "q with H = 0 or D = 0, null data, absent",
              "AttentionErrors.Q"),
      covered(hdr, "attention", Dims, "k of another batch / head dim / Hkv not dividing Hq",
              "AttentionErrors.K"),
      covered(hdr, "attention", Dims, "v of another batch / Hkv / Lk, Dv = 0", "AttentionErrors.V"),
      covered(hdr, "attention", Dims, "out / weights / lse of the wrong shape",
              "AttentionErrors.OutWeightsLseShapes"),
      covered(hdr, "attention", Absent, "outputs overlapping inputs or each other",
              "AttentionErrors.OutputsMustNotOverlapInputsOrEachOther"),
      covered(hdr, "attention", Option,
              "scale NaN/inf, dropout_p outside [0,1), softcap < 0, enums",
              "AttentionErrors.Options"),
      covered(hdr, "attention", Rank, "head_mask of rank 3, int dtype, wrong shape, NaN",
              "AttentionErrors.HeadMask"),
      covered(hdr, "attention", MaskDims, "key_lengths of 3 batches, dense mask (4, 3)",
              "AttentionErrors.MaskThatDoesNotFit"),
      covered(hdr, "attention(bf16)", Dims, "bf16 k, v, out of the wrong shape",
              "AttentionErrors.Bf16InputsAreCheckedLikeFloat"),
      covered(hdr, "attention", ZeroSize, "Lk = 0 (every row empty), Lq = 0, B = 0",
              "EmptyRowPolicies.NoKeysAtAll"),
      covered(hdr, "attention", EmptyBatch, "B = 0 or Lq = 0: nothing written",
              "EmptyRowPolicies.NoQueriesOrBatchIsANoOp"),
      covered(hdr, "attention", NonFinite, "NaN in q / k / v: NaN only where it flows",
              "NanPropagation.ForwardNaNFlowsOnlyWhereItMathematicallyFlows"),
      covered(hdr, "attention", NonFinite, "+-1e4 logits, -inf biases, fully masked rows",
              "NumericRobustness.ForwardMatchesFloat64Reference"),
      covered(hdr, "attention_backward", Dims, "q, k, v as in the forward",
              "AttentionBackwardErrors.InputsAreCheckedAsInTheForward"),
      covered(hdr, "attention_backward", Dims, "out / lse / dout of the wrong shape",
              "AttentionBackwardErrors.ForwardResultsAndDout"),
      covered(hdr, "attention_backward", Dims, "dq / dk / dv of the wrong shape",
              "AttentionBackwardErrors.GradientShapes"),
      covered(hdr, "attention_backward", Absent, "gradients overlapping inputs or each other",
              "AttentionBackwardErrors.GradientsMustNotOverlapInputsOrEachOther"),
      covered(hdr, "attention_backward", Option, "bad options and a mask that does not fit",
              "AttentionBackwardErrors.OptionsAndMask"),
      covered(hdr, "attention_backward", NonFinite, "NaN in q / k / v / dout: flows, not invented",
              "NanPropagation.BackwardNaNFlowsOnlyWhereItMathematicallyFlows"),
      covered(hdr, "attention_backward", NonFinite, "+-1e4 logits, -inf biases, empty rows",
              "NumericRobustness.BackwardMatchesFloat64Reference"),
  };
  for (Backend be : {Backend::Reference, Backend::Flash}) {
    const std::string name = "attention[" + std::string(backend_name(be)) + "]";
    r.push_back(defined(hdr, name, ZeroSize, "Lk = 0 with weights and lse: zeros and -inf", [be] {
      Problem p(1, 2, 3, 0, 4);
      p.run({}, on(be));
      for (float x : p.out) EXPECT_EQ(x, 0.0f);
      for (float x : p.lse) EXPECT_EQ(x, -kInff);
    }));
    r.push_back(defined(hdr, name, ZeroSize, "Lk = 0, EmptyRows::NaN: out NaN, lse -inf", [be] {
      Problem p(1, 1, 2, 0, 4);
      AttentionOptions o = on(be);
      o.empty_rows = EmptyRows::NaN;
      p.run({}, o);
      for (float x : p.out) EXPECT_TRUE(std::isnan(x));
      for (float x : p.lse) EXPECT_EQ(x, -kInff);
    }));
    r.push_back(error(hdr, name, ZeroSize, "Lk = 0 with EmptyRows::Error", "mask", [be] {
      Problem p(1, 1, 2, 0, 4);
      AttentionOptions o = on(be);
      o.empty_rows = EmptyRows::Error;
      p.run({}, o);
    }));
    r.push_back(error(hdr, name, MaskDtype, "keep() of a float mask", "keep", [be] {
      Problem p;
      const std::vector<float> m(9, 1.0f);
      p.run(keep(View<const float, 2>(m.data(), {3, 3})), on(be));
    }));
    r.push_back(error(hdr, name, MaskDtype, "bias() of a bool mask", "bias", [be] {
      Problem p;
      const bool m[9] = {};
      p.run(bias(View<const bool, 2>(m, {3, 3})), on(be));
    }));
    r.push_back(
        error(hdr, name, MaskDims, "a (B, H, L, S) keep mask with L = 4", "mask: keep", [be] {
          Problem p;
          const std::vector<uint8_t> m(2 * 2 * 4 * 3, 1);
          p.run(keep(View<const bool, 4>(reinterpret_cast<const bool*>(m.data()), {2, 2, 4, 3})),
                on(be));
        }));
    r.push_back(
        error(hdr, name, Huge, "k viewed with a stride whose offsets overflow int64",
              "View strides", [be] {
                Problem p;
                const View<const float, 4> huge(p.k.data(), {2, 2, 3, 4}, {1, 1, kMax64 / 2, 1});
                attention(p.q.view<4>(), huge, p.v.view<4>(), p.out.view<4>(), {}, on(be));
              }));
    r.push_back(error(hdr, "attention_backward[" + std::string(backend_name(be)) + "]", Huge,
                      "dq viewed with strides whose byte offsets overflow int64", "View strides",
                      [be] {
                        Problem p;
                        p.run({}, on(be));
                        Tensor<float> dq({2, 2, 3, 4}), dk({2, 2, 3, 4}), dv({2, 2, 3, 4});
                        const View<float, 4> huge(dq.data(), {2, 2, 3, 4}, {kMax64 / 3, 12, 4, 1});
                        attention_backward(p.q.view<4>(), p.k.view<4>(), p.v.view<4>(),
                                           p.out.view<4>(), p.lse.view<3>(), p.out.view<4>(), huge,
                                           dk.view<4>(), dv.view<4>(), {}, on(be));
                      }));
    r.push_back(error(hdr, "attention(bf16)[" + std::string(backend_name(be)) + "]", Option,
                      "opts.scale NaN with bf16 inputs", "opts.scale", [be] {
                        Tensor<BFloat16> q({1, 1, 2, 4}), k({1, 1, 2, 4}), v({1, 1, 2, 4});
                        Tensor<float> out({1, 1, 2, 4});
                        AttentionOptions o = on(be);
                        o.scale = kNaNf;
                        attention(q.view<4>(), k.view<4>(), v.view<4>(), out.view<4>(), {}, o);
                      }));
  }
  r.push_back(defined(hdr, "dropout_keep", Huge, "a shape whose B*H*Lq*Lk overflows: no UB", [] {
    const MaskShape s{kHugeSide, kHugeSide, kHugeSide, kHugeSide};
    const bool a = dropout_keep(1, 0.5f, s, kHugeSide - 1, 3, kHugeSide - 1, 5);
    EXPECT_EQ(a, dropout_keep(1, 0.5f, s, kHugeSide - 1, 3, kHugeSide - 1, 5));
  }));
  r.push_back(defined(hdr, "dropout_keep", NonFinite, "dropout_p NaN: kept (no dropout)", [] {
    EXPECT_TRUE(dropout_keep(1, kNaNf, {1, 1, 2, 2}, 0, 0, 1, 1));
  }));
  r.push_back(defined(hdr, "backend_name", Option, "an enum value out of range",
                      [] { EXPECT_EQ(backend_name(static_cast<Backend>(9)), "unknown"); }));
  return r;
}

std::vector<Case> tensor_rows() {
  const std::string hdr = "tensor.hpp";
  static float buf[64] = {};
  return {
      error(hdr, "Tensor(shape)", Negative, "a negative size", "Tensor shape",
            [] {
              Tensor<float> t({2, -1});
            }),
      error(hdr, "Tensor(shape)", Huge, "(2^32, 2^32): numel overflows", "Tensor shape",
            [] {
              Tensor<float> t({kHugeSide, kHugeSide});
            }),
      error(hdr, "Tensor(shape)", Huge, "numel fits, bytes overflow", "Tensor bytes",
            [] { Tensor<double> t({kMax64 / 4}); }),
      defined(hdr, "Tensor(shape)", ZeroSize, "a zero-size dimension: numel 0, data non-null",
              [] {
                Tensor<float> t({3, 0, 2});
                EXPECT_EQ(t.numel(), 0);
                EXPECT_NE(t.data(), nullptr);
              }),
      error(hdr, "Tensor::view", Rank, "view<3>() of a rank-2 tensor", "Tensor::view",
            [] {
              Tensor<float>({2, 3}).view<3>();
            }),
      error(hdr, "View(data, shape)", Negative, "a negative size", "View shape",
            [] {
              View<float, 2>(buf, {-1, 2});
            }),
      error(hdr, "View(data, shape)", Huge, "(2^32, 2^32, 1)", "View shape",
            [] {
              View<float, 3>(buf, {kHugeSide, kHugeSide, 1});
            }),
      error(hdr, "View(data, shape, strides)", Negative, "a negative stride", "View strides",
            [] {
              View<float, 2>(buf, {2, 2}, {-2, 1});
            }),
      error(hdr, "View(data, shape, strides)", Dims, "last dimension not contiguous",
            "View strides",
            [] {
              View<float, 2>(buf, {2, 2}, {4, 2});
            }),
      error(hdr, "View(data, shape, strides)", Huge, "a stride whose last offset overflows int64",
            "View strides",
            [] {
              View<float, 2>(buf, {3, 2}, {kMax64 / 2, 1});
            }),
      error(hdr, "View::transposed", Dims, "the last dimension", "transposed",
            [] {
              View<float, 3>(buf, {2, 2, 2}).transposed(0, 2);
            }),
      error(hdr, "View::transposed", Negative, "dimension -1", "transposed",
            [] {
              View<float, 3>(buf, {2, 2, 2}).transposed(-1, 0);
            }),
      error(hdr, "checked_mul", Negative, "-1 * 2", "what", [] { checked_mul(-1, 2, "what"); }),
      error(hdr, "checked_mul", Huge, "2^32 * 2^32", "what",
            [] { checked_mul(kHugeSide, kHugeSide, "what"); }),
      error(hdr, "checked_numel", Huge, "(2^32, 2^31, 2)", "what",
            [] {
              const std::vector<int64_t> s{kHugeSide, kHugeSide / 2, 2};
              checked_numel(s, "what");
            }),
      error(hdr, "AnyView(data, dtype, shape, strides)", Rank, "strides of another rank",
            "AnyView strides",
            [] {
              AnyView(buf, DType::Float32, {2, 2}, {1});
            }),
      error(hdr, "AnyView(data, dtype, shape, strides)", Negative, "a negative size",
            "AnyView shape",
            [] {
              AnyView(buf, DType::Float32, {-2, 2}, {2, 1});
            }),
      error(hdr, "AnyView(data, dtype, shape, strides)", Huge, "(2^32, 2^32)", "AnyView shape",
            [] {
              AnyView(buf, DType::Float32, {kHugeSide, kHugeSide}, {1, 1});
            }),
      error(hdr, "to_float32", Absent, "an absent view", "array", [] { to_float32(AnyView{}); }),
      defined(hdr, "to_float32", NonFinite, "float64 1e300, NaN: +inf, NaN",
              [] {
                const double d[2] = {1e300, kNaN};
                const Tensor<float> f = to_float32(View<const double, 1>(d, {2}));
                EXPECT_EQ(f.data()[0], kInff);
                EXPECT_TRUE(std::isnan(f.data()[1]));
              }),
      defined(hdr, "for_each_index", ZeroSize, "a zero size: never called",
              [] {
                const std::vector<int64_t> s{2, 0, 3};
                int calls = 0;
                for_each_index(s, [&](std::span<const int64_t>) { ++calls; });
                EXPECT_EQ(calls, 0);
              }),
      defined(hdr, "dtype_name", Option, "an enum value out of range",
              [] { EXPECT_EQ(dtype_name(static_cast<DType>(42)), "unknown"); }),
  };
}

std::vector<Case> small_header_rows() {
  return {
      error("error.hpp", "check", Option, "a false condition", "arg",
            [] { check(false, "arg", "x", "y"); }),
      defined("error.hpp", "Error", Absent, "empty argument, expected, actual",
              [] {
                const Error e("", "", "");
                EXPECT_EQ(e.argument(), "");
                EXPECT_NE(std::string(e.what()).find("maskattn"), std::string::npos);
              }),
      defined("bfloat16.hpp", "to_bfloat16", NonFinite, "NaN stays NaN, +-inf stays +-inf",
              [] {
                EXPECT_TRUE(std::isnan(to_float(to_bfloat16(kNaNf))));
                EXPECT_TRUE(std::isnan(to_float(to_bfloat16(-kNaNf))));
                EXPECT_EQ(to_float(to_bfloat16(kInff)), kInff);
                EXPECT_EQ(to_float(to_bfloat16(-kInff)), -kInff);
              }),
      defined("bfloat16.hpp", "to_bfloat16", Huge, "3.4e38 rounds to +inf, -3.4e38 to -inf",
              [] {
                EXPECT_EQ(to_float(to_bfloat16(3.4e38f)), kInff);
                EXPECT_EQ(to_float(to_bfloat16(-3.4e38f)), -kInff);
              }),
  };
}

MASKATTN_BAD_INPUT_ROWS(core) {
  std::vector<Case> r = attention_rows();
  for (auto* f : {tensor_rows, small_header_rows})
    for (Case& c : f()) r.push_back(std::move(c));
  return r;
}

}  // namespace
}  // namespace maskattn::testing_bad_input
