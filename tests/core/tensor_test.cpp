#include "maskattn/tensor.hpp"

#include <gtest/gtest.h>

#include <cstdint>
#include <limits>
#include <string>

namespace maskattn {
namespace {

TEST(Error, MessageNamesArgumentExpectedAndActual) {
  const Error e("q", "rank 4", "rank 3");
  EXPECT_STREQ(e.what(), "maskattn: q: expected rank 4, got rank 3");
  EXPECT_EQ(e.argument(), "q");
  EXPECT_EQ(e.expected(), "rank 4");
  EXPECT_EQ(e.actual(), "rank 3");
  // Catchable as the standard base.
  EXPECT_THROW(throw Error("a", "b", "c"), std::invalid_argument);
}

TEST(SizeArithmetic, CheckedMulDetectsOverflowAndNegative) {
  EXPECT_EQ(checked_mul(3, 4, "n"), 12);
  EXPECT_EQ(checked_mul(0, std::numeric_limits<int64_t>::max(), "n"), 0);
  EXPECT_THROW(checked_mul(int64_t{1} << 32, int64_t{1} << 31, "n"), Error);
  EXPECT_THROW(checked_mul(-1, 2, "n"), Error);
  try {
    checked_mul(int64_t{1} << 40, int64_t{1} << 40, "weights bytes");
    FAIL() << "no throw";
  } catch (const Error& e) {
    EXPECT_NE(std::string(e.what()).find("weights bytes"), std::string::npos);
  }
}

TEST(SizeArithmetic, CheckedNumel) {
  const std::vector<int64_t> ok{2, 3, 4};
  EXPECT_EQ(checked_numel(ok, "s"), 24);
  const std::vector<int64_t> zero{2, 0, 4};
  EXPECT_EQ(checked_numel(zero, "s"), 0);
  const std::vector<int64_t> neg{2, -1};
  EXPECT_THROW(checked_numel(neg, "s"), Error);
  // B * H * L * L overflowing int64 — the case that must fail before allocation.
  const std::vector<int64_t> huge{1 << 20, 1 << 20, 1 << 20, 1 << 20};
  EXPECT_THROW(checked_numel(huge, "s"), Error);
  // Found by fuzz/npy_fuzzer: a zero size made the count 0 and hid the
  // overflow of the others, which the strides of a view then hit (UBSan:
  // signed overflow in AnyView::contiguous_strides).
  const std::vector<int64_t> empty_but_huge{0, 1129703, 907000, 11297038};
  EXPECT_THROW(checked_numel(empty_but_huge, "s"), Error);
  EXPECT_THROW(AnyView::contiguous_strides(empty_but_huge), Error);
  const std::vector<int64_t> empty_fits{0, int64_t{1} << 62, 1};
  EXPECT_EQ(checked_numel(empty_fits, "s"), 0);
  EXPECT_EQ(AnyView::contiguous_strides(empty_fits),
            (std::vector<int64_t>{int64_t{1} << 62, 1, 1}));
  EXPECT_EQ(shape_string(ok), "(2, 3, 4)");
  EXPECT_EQ(shape_string(std::vector<int64_t>{5}), "(5,)");
}

TEST(View, ContiguousIndexing) {
  float data[24];
  for (int i = 0; i < 24; ++i) data[i] = static_cast<float>(i);
  View<float, 3> v(data, {2, 3, 4});
  EXPECT_EQ(v.stride(0), 12);
  EXPECT_EQ(v.stride(1), 4);
  EXPECT_EQ(v.stride(2), 1);
  EXPECT_EQ(v(1, 2, 3), 23.0f);
  EXPECT_EQ(v.row(1, 1)[2], 18.0f);
  EXPECT_TRUE(v.is_contiguous());
  EXPECT_EQ(v.numel(), 24);
  View<const float, 3> c = v;  // adds const
  EXPECT_EQ(c(0, 1, 0), 4.0f);
}

TEST(View, BlhdMemoryViewedAsBhld) {
  // (B=1, L=3, H=2, D=2) memory; element (b, l, h, d) = 100 l + 10 h + d.
  float data[12];
  for (int l = 0; l < 3; ++l)
    for (int h = 0; h < 2; ++h)
      for (int d = 0; d < 2; ++d)
        data[(l * 2 + h) * 2 + d] = static_cast<float>(100 * l + 10 * h + d);
  View<float, 4> bhld = View<float, 4>(data, {1, 3, 2, 2}).transposed(1, 2);
  EXPECT_EQ(bhld.size(1), 2);
  EXPECT_EQ(bhld.size(2), 3);
  EXPECT_EQ(bhld(0, 1, 2, 1), 211.0f);
  EXPECT_FALSE(bhld.is_contiguous());
  EXPECT_THROW(bhld.transposed(2, 3), Error);  // the last dimension stays contiguous
}

TEST(View, StridedConstructorChecks) {
  float data[16] = {};
  EXPECT_NO_THROW((View<float, 2>(data, {2, 4}, {8, 1})));
  EXPECT_THROW((View<float, 2>(data, {2, 4}, {8, 2})), Error);   // last dim not contiguous
  EXPECT_THROW((View<float, 2>(data, {2, 4}, {-4, 1})), Error);  // negative stride
  EXPECT_THROW((View<float, 2>(data, {-2, 4})), Error);          // negative size
  // A last dimension of size 1 may carry any stride (what numpy gives for (N, 1)).
  View<float, 2> col(data, {4, 1}, {4, 7});
  EXPECT_EQ(col.stride(1), 1);
  EXPECT_EQ(&col(3, 0), data + 12);
}

// Regression: a stride whose offsets overflow int64 was accepted, and
// attention()'s overlap check then computed the view's extent with signed
// overflow (the kernels read through wrapped offsets).
TEST(View, StridesWhoseOffsetsOverflowAreErrors) {
  float data[16] = {};
  constexpr int64_t kMax = std::numeric_limits<int64_t>::max();
  EXPECT_THROW((View<float, 2>(data, {3, 2}, {kMax / 2, 1})), Error);  // 2 * (kMax / 2) + 1
  EXPECT_THROW((View<float, 2>(data, {2, 2}, {kMax / 2, 1})), Error);  // bytes: x 4
  EXPECT_NO_THROW((View<char, 2>(nullptr, {2, 1}, {kMax / 2, 1})));    // bytes fit
  EXPECT_NO_THROW((View<float, 2>(data, {0, 2}, {kMax, 1})));          // no element
  EXPECT_NO_THROW((View<float, 2>(data, {1, 2}, {kMax, 1})));          // stride never taken
  EXPECT_THROW(AnyView(data, DType::Float64, {2, 2}, {kMax / 8, 1}), Error);
  EXPECT_NO_THROW(AnyView(data, DType::UInt8, {2, 2}, {kMax / 8, 1}));
}

TEST(Tensor, AlignedZeroedAndDeepCopy) {
  Tensor<float> t({3, 5});
  EXPECT_EQ(reinterpret_cast<std::uintptr_t>(t.data()) % 64, 0u);
  EXPECT_EQ(t.numel(), 15);
  for (float x : t) EXPECT_EQ(x, 0.0f);
  t.view<2>()(2, 4) = 7.0f;
  Tensor<float> u = t;
  u.view<2>()(2, 4) = 1.0f;
  EXPECT_EQ(t.view<2>()(2, 4), 7.0f);
  EXPECT_THROW(t.view<3>(), Error);
  Tensor<float> empty({0, 4});
  EXPECT_EQ(empty.numel(), 0);
  EXPECT_THROW(Tensor<float>({-1}), Error);
  EXPECT_THROW(Tensor<float>({int64_t{1} << 62, 8}), Error);  // bytes overflow before allocating
}

TEST(Tensor, CopiesOfEmptyAndScalarTensors) {
  // A default-constructed tensor has no storage; its copy neither.
  const Tensor<float> none;
  const Tensor<float> none_copy = none;
  EXPECT_EQ(none_copy.numel(), 0);
  EXPECT_EQ(none_copy.data(), nullptr);
  Tensor<float> assigned({2});
  assigned = none;
  EXPECT_EQ(assigned.numel(), 0);
  // A rank-0 tensor holds one value, and so does its copy.
  Tensor<float> scalar(std::vector<int64_t>{});
  EXPECT_EQ(scalar.numel(), 1);
  scalar.data()[0] = 3.0f;
  const Tensor<float> scalar_copy = scalar;
  EXPECT_EQ(scalar_copy.data()[0], 3.0f);
}

TEST(AnyView, ReadsEveryDtype) {
  const bool b[2] = {false, true};
  const int32_t i32[2] = {-3, 4};
  const int64_t i64[2] = {(int64_t{1} << 60) + 1, 5};
  const double f64[2] = {0.5, -2.0};
  AnyView vb = View<const bool, 1>(b, {2});
  AnyView vi = View<const int32_t, 1>(i32, {2});
  AnyView vl = View<const int64_t, 1>(i64, {2});
  AnyView vd = View<const double, 1>(f64, {2});
  const int64_t one[1] = {1};
  EXPECT_EQ(vb.at(one), 1.0);
  EXPECT_EQ(vi.at_int(std::span<const int64_t>(one, 1)), 4);
  const int64_t zero[1] = {0};
  EXPECT_EQ(vl.at_int(zero), (int64_t{1} << 60) + 1);  // exact past 2^53
  EXPECT_EQ(vd.at(one), -2.0);
  EXPECT_EQ(vd.describe(), "float64 (2,)");
  EXPECT_TRUE(AnyView().empty());
  Tensor<float> t({2, 3});
  AnyView vt = t;
  EXPECT_EQ(vt.rank(), 2);
  EXPECT_EQ(vt.strides[0], 3);
  EXPECT_THROW(AnyView(f64, DType::Float64, {2}, {1, 1}), Error);
}

TEST(ForEachIndex, RowMajorOverEveryShape) {
  std::vector<std::vector<int64_t>> seen;
  const std::vector<int64_t> shape = {2, 1, 3};
  for_each_index(shape, [&](std::span<const int64_t> i) { seen.emplace_back(i.begin(), i.end()); });
  const std::vector<std::vector<int64_t>> want = {{0, 0, 0}, {0, 0, 1}, {0, 0, 2},
                                                  {1, 0, 0}, {1, 0, 1}, {1, 0, 2}};
  EXPECT_EQ(seen, want);
  int calls = 0;
  for_each_index(std::vector<int64_t>{}, [&](std::span<const int64_t> i) {
    EXPECT_TRUE(i.empty());
    ++calls;
  });
  EXPECT_EQ(calls, 1);  // rank 0: one element
  for_each_index(std::vector<int64_t>{3, 0, 2}, [&](std::span<const int64_t>) { ++calls; });
  EXPECT_EQ(calls, 1);  // a zero size: none
}

TEST(AnyView, IsContiguous) {
  float data[12] = {};
  EXPECT_TRUE(AnyView(View<const float, 2>(data, {3, 4})).is_contiguous());
  EXPECT_FALSE(AnyView(View<const float, 2>(data, {3, 2}, {4, 1})).is_contiguous());
  // Strides of size-1 dimensions do not matter.
  EXPECT_TRUE(AnyView(data, DType::Float32, {1, 4}, {99, 1}).is_contiguous());
  EXPECT_FALSE(AnyView(View<const float, 3>(data, {2, 3, 2}).transposed(0, 1)).is_contiguous());
}

}  // namespace
}  // namespace maskattn

namespace maskattn {
namespace {

TEST(ToFloat32, ConvertsAnyDtypeAndLayoutToContiguousFloat) {
  Tensor<int64_t> i({2, 3});
  for (int64_t k = 0; k < 6; ++k) i.data()[k] = k - 2;
  // The transpose (3, 2) of the int64 matrix.
  const Tensor<float> t = to_float32(AnyView(i.data(), DType::Int64, {3, 2}, {1, 3}));
  EXPECT_EQ(t.shape(), (std::vector<int64_t>{3, 2}));
  EXPECT_EQ(std::vector<float>(t.begin(), t.end()), (std::vector<float>{-2, 1, -1, 2, 0, 3}));
  Tensor<double> d({2});
  d.data()[0] = 0.5;
  d.data()[1] = -1e300;
  const Tensor<float> f = to_float32(d);
  EXPECT_EQ(f.data()[0], 0.5f);
  EXPECT_EQ(f.data()[1], -std::numeric_limits<float>::infinity());
  Tensor<float> same({4});
  same.data()[3] = 7.0f;
  EXPECT_EQ(to_float32(same).data()[3], 7.0f);
  EXPECT_THROW((void)to_float32(AnyView(nullptr, DType::Float32, {2}, {1})), Error);
}

TEST(DType, SizeIsTheElementTypes) {
  EXPECT_EQ(dtype_size(dtype_of<bool>()), sizeof(bool));
  EXPECT_EQ(dtype_size(dtype_of<uint8_t>()), sizeof(uint8_t));
  EXPECT_EQ(dtype_size(dtype_of<int32_t>()), sizeof(int32_t));
  EXPECT_EQ(dtype_size(dtype_of<int64_t>()), sizeof(int64_t));
  EXPECT_EQ(dtype_size(dtype_of<float>()), sizeof(float));
  EXPECT_EQ(dtype_size(dtype_of<double>()), sizeof(double));
}

}  // namespace
}  // namespace maskattn
