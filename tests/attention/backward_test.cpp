// attention_backward() on both backends against central finite differences of
// the naive double-precision forward (attention_oracle.hpp): the loss is
// sum(out * g) for a random g, so d loss / d out = g is the dout passed in,
// and each element of q, k and v is moved by +-h in double precision.
//
// Tolerance: |got - fd| <= tol * max(1, max |fd|) per gradient tensor, with
// tol = 2e-6 on reference (double arithmetic; the errors left are the float32
// out and lse it reads and the rounding of the result to float32) and 4e-6 on
// flash (float32 arithmetic throughout). The finite differences use h = 1e-4:
// truncation error h^2 / 6 |f'''| and rounding error 1e-16 |f| / h both stay
// below 1e-8 on these unit-variance problems.
#include <gtest/gtest.h>

#include <array>
#include <cmath>
#include <cstdio>
#include <cstring>
#include <limits>
#include <random>
#include <string>
#include <vector>

#include "attention/attention_oracle.hpp"
#include "maskattn/attention.hpp"
#include "maskattn/mask.hpp"

namespace maskattn {
namespace {

using testing_attention::allow_all;
using testing_attention::BackendSuite;
using testing_attention::BackwardInputs;
using testing_attention::both;
using testing_attention::Buffer4;
using testing_attention::GradientBuffers;
using testing_attention::kInf;
using testing_attention::Layout;
using testing_attention::naive_attention;
using testing_attention::NaiveOptions;
using testing_attention::on_backend;
using testing_attention::Rule;
using testing_attention::Shape;
using testing_attention::shape_text;

constexpr double kStep = 1e-4;

double tolerance() {
  return testing_attention::backend_under_test() == Backend::Flash ? 2e-5 : 2e-6;
}

// A test buffer's values in double precision, read as x(a, b, c, d) by the
// naive loop and moved one element at a time by the finite differences.
class Double4 {
 public:
  explicit Double4(const Buffer4& b) : shape_(b.view().shape()) {
    data_.resize(static_cast<std::size_t>(shape_[0] * shape_[1] * shape_[2] * shape_[3]));
    for (int64_t a = 0; a < shape_[0]; ++a)
      for (int64_t c = 0; c < shape_[1]; ++c)
        for (int64_t i = 0; i < shape_[2]; ++i)
          for (int64_t x = 0; x < shape_[3]; ++x) at(a, c, i, x) = b(a, c, i, x);
  }
  double operator()(int64_t a, int64_t b, int64_t c, int64_t d) const {
    return data_[index(a, b, c, d)];
  }
  double& at(int64_t a, int64_t b, int64_t c, int64_t d) { return data_[index(a, b, c, d)]; }
  const std::array<int64_t, 4>& shape() const { return shape_; }

 private:
  std::size_t index(int64_t a, int64_t b, int64_t c, int64_t d) const {
    return static_cast<std::size_t>(((a * shape_[1] + b) * shape_[2] + c) * shape_[3] + d);
  }
  std::array<int64_t, 4> shape_;
  std::vector<double> data_;
};

// One gradient check: shapes, layout, a mask with the rule it means, options
// for the library and for the naive loop.
struct Problem {
  Shape s;
  Layout layout = Layout::BHLD;
  Mask mask;
  Rule rule = allow_all();
  AttentionOptions opts;
  NaiveOptions naive;
  unsigned seed = 1;
};

// The inputs of a problem, its forward (out, lse) on the backend under test,
// and its backward.
class BackwardRun {
 public:
  explicit BackwardRun(const Problem& p)
      : p_(p), in_(p.s, p.layout, p.seed), grads_(p.s, p.layout) {
    attention(in_.q.cview(), in_.k.cview(), in_.v.cview(), in_.out.view<4>(), p.mask,
              on_backend(p.opts), {}, in_.lse.view<3>());
    attention_backward(in_.q.cview(), in_.k.cview(), in_.v.cview(), in_.out.view<4>(),
                       in_.lse.view<3>(), in_.g.cview(), grads_.dq.view(), grads_.dk.view(),
                       grads_.dv.view(), p.mask, on_backend(p.opts));
  }

  const GradientBuffers& grads() const { return grads_; }
  const Buffer4& q() const { return in_.q; }
  const Buffer4& k() const { return in_.k; }
  const Buffer4& v() const { return in_.v; }

  // sum(out * g) by the naive loop on double inputs.
  double loss(const Double4& q, const Double4& k, const Double4& v) const {
    const testing_attention::Expected e = naive_attention(p_.s, q, k, v, p_.rule, p_.naive);
    double sum = 0.0;
    std::size_t x = 0;
    for (int64_t b = 0; b < p_.s.batch; ++b)
      for (int64_t h = 0; h < p_.s.hq; ++h)
        for (int64_t i = 0; i < p_.s.lq; ++i)
          for (int64_t d = 0; d < p_.s.dv; ++d, ++x) sum += e.out[x] * in_.g(b, h, i, d);
    return sum;
  }

 private:
  const Problem& p_;
  BackwardInputs in_;
  GradientBuffers grads_;
};

// Central differences of the loss along every element of input `which` (0 q,
// 1 k, 2 v) against the backward's gradient `got`.
::testing::AssertionResult matches_differences(const BackwardRun& run, int which,
                                               const Buffer4& got, double tol, double& worst) {
  Double4 q(run.q()), k(run.k()), v(run.v());
  Double4& x = which == 0 ? q : which == 1 ? k : v;
  const auto [n0, n1, n2, n3] = x.shape();
  std::vector<double> fd;
  double scale = 1.0;
  for (int64_t a = 0; a < n0; ++a)
    for (int64_t b = 0; b < n1; ++b)
      for (int64_t c = 0; c < n2; ++c)
        for (int64_t d = 0; d < n3; ++d) {
          double& e = x.at(a, b, c, d);
          const double saved = e;
          e = saved + kStep;
          const double up = run.loss(q, k, v);
          e = saved - kStep;
          const double down = run.loss(q, k, v);
          e = saved;
          fd.push_back((up - down) / (2 * kStep));
          scale = std::max(scale, std::fabs(fd.back()));
        }
  const char* name = which == 0 ? "dq" : which == 1 ? "dk" : "dv";
  std::size_t n = 0;
  for (int64_t a = 0; a < n0; ++a)
    for (int64_t b = 0; b < n1; ++b)
      for (int64_t c = 0; c < n2; ++c)
        for (int64_t d = 0; d < n3; ++d, ++n) {
          const double err = std::fabs(got(a, b, c, d) - fd[n]) / scale;
          worst = std::max(worst, err);
          if (!(err <= tol))
            return ::testing::AssertionFailure()
                   << name << "(" << a << ", " << b << ", " << c << ", " << d << "): backward "
                   << got(a, b, c, d) << ", finite differences " << fd[n] << " (tol " << tol
                   << " x " << scale << ")";
        }
  if (got.gaps_written() != 0)
    return ::testing::AssertionFailure() << name << ": written outside its view";
  return ::testing::AssertionSuccess();
}

// The worst error of the running test (over its checks), recorded as the
// test's property worst_relative_error (--gtest_output=xml shows it).
double& test_worst() {
  static double worst = 0.0;
  return worst;
}

::testing::AssertionResult gradients_check(const Problem& p) {
  const BackwardRun run(p);
  double& worst = test_worst();
  const Buffer4* got[3] = {&run.grads().dq, &run.grads().dk, &run.grads().dv};
  for (int which = 0; which < 3; ++which) {
    auto r = matches_differences(run, which, *got[which], tolerance(), worst);
    if (!r) return r << " in " << shape_text(p.s) << " mask " << p.mask.describe();
  }
  return ::testing::AssertionSuccess();
}

Rule band_rule(int64_t left, int64_t right, int64_t offset) {
  return [=](int64_t, int64_t, int64_t i, int64_t j) {
    const int64_t d = j - (i + offset);  // distance right of the aligned diagonal
    return (left == kUnbounded || -d <= left) && (right == kUnbounded || d <= right) ? 0.0 : -kInf;
  };
}

Rule key_length_rule(std::vector<int64_t> lens) {
  return [lens](int64_t b, int64_t, int64_t, int64_t j) {
    return j < lens[static_cast<std::size_t>(b)] ? 0.0 : -kInf;
  };
}

class AttentionBackward : public BackendSuite {
 protected:
  void SetUp() override {
    BackendSuite::SetUp();
    test_worst() = 0.0;
  }
  void TearDown() override {
    char text[32];
    std::snprintf(text, sizeof text, "%.2e", test_worst());
    RecordProperty("worst_relative_error", text);
    BackendSuite::TearDown();
  }
};
MASKATTN_INSTANTIATE_FOR_BACKENDS(AttentionBackward);

TEST_P(AttentionBackward, NoMask) {
  Problem p;
  p.s = {2, 2, 2, 5, 6, 4, 3};
  EXPECT_TRUE(gradients_check(p));
}

TEST_P(AttentionBackward, CausalTopLeftAndBottomRightWithUnequalLengths) {
  for (auto [lq, lk] : {std::pair<int64_t, int64_t>{4, 7}, {7, 4}})
    for (Align align : {Align::TopLeft, Align::BottomRight}) {
      Problem p;
      p.s = {1, 2, 2, lq, lk, 4, 4};
      p.mask = causal(align);
      // Bottom-right with Lq > Lk leaves the first Lq - Lk rows empty.
      p.rule = band_rule(kUnbounded, 0, align == Align::TopLeft ? 0 : lk - lq);
      p.seed = static_cast<unsigned>(lq * 10 + (align == Align::TopLeft));
      EXPECT_TRUE(gradients_check(p)) << lq << " x " << lk;
    }
}

TEST_P(AttentionBackward, PaddingByKeyLengths) {
  Problem p;
  p.s = {3, 2, 2, 5, 6, 4, 4};
  const std::vector<int64_t> lens = {6, 2, 0};  // the last batch's rows are all empty
  p.mask = key_lengths(lens) & causal(Align::BottomRight);
  p.rule = both(key_length_rule(lens), band_rule(kUnbounded, 0, 1));
  EXPECT_TRUE(gradients_check(p));
}

TEST_P(AttentionBackward, AlibiAndDenseBias) {
  Problem p;
  p.s = {1, 2, 2, 5, 6, 4, 4};
  const std::vector<float> slopes = {0.5f, 0.25f};
  p.mask = alibi(slopes) & causal();
  p.rule = both(
      [slopes](int64_t, int64_t h, int64_t i, int64_t j) {
        return -static_cast<double>(slopes[static_cast<std::size_t>(h)]) *
               static_cast<double>(std::abs(i - j));
      },
      band_rule(kUnbounded, 0, 0));
  EXPECT_TRUE(gradients_check(p));

  Tensor<float> b({5, 6});
  std::mt19937 rng(3);
  std::uniform_real_distribution<float> u(-2.0f, 2.0f);
  for (float& x : b) x = u(rng);
  b.data()[7] = -std::numeric_limits<float>::infinity();
  p.mask = bias(b);
  p.rule = [&b](int64_t, int64_t, int64_t i, int64_t j) {
    return static_cast<double>(b.data()[i * 6 + j]);
  };
  EXPECT_TRUE(gradients_check(p));
}

TEST_P(AttentionBackward, GroupedAndMultiQueryHeads) {
  Problem p;
  p.s = {2, 4, 2, 5, 6, 4, 5};  // two query heads per key/value head
  p.mask = causal();
  p.rule = band_rule(kUnbounded, 0, 0);
  EXPECT_TRUE(gradients_check(p));
  p.s = {1, 3, 1, 4, 5, 3, 2};  // one key/value head for all
  p.mask = Mask();
  p.rule = allow_all();
  EXPECT_TRUE(gradients_check(p));
}

TEST_P(AttentionBackward, HeadMask) {
  Problem p;
  p.s = {2, 3, 3, 4, 5, 4, 4};
  Tensor<float> head({2, 3});
  const float values[] = {1.0f, 0.0f, 1.5f, 0.5f, 1.0f, -0.75f};
  std::copy(values, values + 6, head.data());
  p.opts.head_mask = head;
  p.naive.head_mask = [&head](int64_t b, int64_t h) {
    return static_cast<double>(head.data()[b * 3 + h]);
  };
  p.mask = causal(Align::BottomRight);
  p.rule = band_rule(kUnbounded, 0, 1);
  EXPECT_TRUE(gradients_check(p));
}

TEST_P(AttentionBackward, DropoutReplayedFromTheSeed) {
  Problem p;
  p.s = {2, 2, 1, 5, 6, 4, 4};
  p.opts.dropout_p = p.naive.dropout_p = 0.3f;
  p.opts.seed = p.naive.seed = 17;
  p.mask = causal();
  p.rule = band_rule(kUnbounded, 0, 0);
  EXPECT_TRUE(gradients_check(p));
}

TEST_P(AttentionBackward, SoftcapAndScale) {
  Problem p;
  p.s = {1, 2, 2, 5, 6, 4, 4};
  p.opts.softcap = 1.5f;
  p.naive.softcap = 1.5;
  p.opts.scale = 0.8f;  // logits of order 2: the cap bends them
  p.naive.scale = 0.8;
  EXPECT_TRUE(gradients_check(p));
}

TEST_P(AttentionBackward, FullyMaskedRowsContributeNothing) {
  Problem p;
  p.s = {2, 2, 2, 5, 6, 4, 4};
  const std::vector<int64_t> qlens = {3, 0}, klens = {6, 4};
  p.mask = query_lengths(qlens) & key_lengths(klens);
  p.rule = both([qlens](int64_t b, int64_t, int64_t i,
                        int64_t) { return i < qlens[static_cast<std::size_t>(b)] ? 0.0 : -kInf; },
                key_length_rule(klens));
  EXPECT_TRUE(gradients_check(p));
  // EmptyRows::NaN: the forward's empty rows hold NaN; the gradients are the
  // same, bit for bit, and dq of an empty row is 0.
  const BackwardRun zero(p);
  p.opts.empty_rows = EmptyRows::NaN;
  const BackwardRun nan(p);
  for (const auto& [a, b] : {std::pair{&zero.grads().dq, &nan.grads().dq},
                             {&zero.grads().dk, &nan.grads().dk},
                             {&zero.grads().dv, &nan.grads().dv}}) {
    const View<float, 4> x = a->view(), y = b->view();
    for (int64_t n0 = 0; n0 < x.size(0); ++n0)
      for (int64_t n1 = 0; n1 < x.size(1); ++n1)
        for (int64_t n2 = 0; n2 < x.size(2); ++n2)
          for (int64_t n3 = 0; n3 < x.size(3); ++n3)
            ASSERT_EQ(x(n0, n1, n2, n3), y(n0, n1, n2, n3));
  }
  for (int64_t i = 3; i < 5; ++i)
    for (int64_t x = 0; x < 4; ++x) EXPECT_EQ(nan.grads().dq(0, 1, i, x), 0.0);
}

TEST_P(AttentionBackward, StridedInputsAndGradients) {
  for (Layout layout : {Layout::BLHD, Layout::Padded}) {
    Problem p;
    p.s = {2, 4, 2, 5, 4, 3, 5};
    p.layout = layout;
    p.mask = causal(Align::BottomRight);
    p.rule = band_rule(kUnbounded, 0, -1);
    EXPECT_TRUE(gradients_check(p)) << static_cast<int>(layout);
  }
}

TEST_P(AttentionBackward, EverythingAtOnce) {
  Problem p;
  p.s = {2, 4, 2, 6, 5, 3, 4};
  p.layout = Layout::BLHD;
  const std::vector<int64_t> lens = {5, 3};
  p.mask = causal(Align::BottomRight) & key_lengths(lens);
  p.rule = both(band_rule(kUnbounded, 0, -1), key_length_rule(lens));
  Tensor<float> head({4});
  const float values[] = {1.0f, 0.5f, 2.0f, 1.0f};
  std::copy(values, values + 4, head.data());
  p.opts.head_mask = head;
  p.naive.head_mask = [&head](int64_t, int64_t h) { return static_cast<double>(head.data()[h]); };
  p.opts.dropout_p = p.naive.dropout_p = 0.2f;
  p.opts.seed = p.naive.seed = 5;
  p.opts.softcap = 3.0f;
  p.naive.softcap = 3.0;
  EXPECT_TRUE(gradients_check(p));
}

}  // namespace
}  // namespace maskattn
