// A test suite instantiated once per SIMD target the library's kernels were
// compiled for and this CPU runs (AVX3, AVX2, SCALAR here): each test runs
// with run-time dispatch forced to its target.
//
//   class Flash : public testing_simd::TargetSuite {};
//   MASKATTN_INSTANTIATE_FOR_SIMD_TARGETS(Flash);
#pragma once

#include <gtest/gtest.h>

#include <cstdint>
#include <string>

#include "kernels/simd_targets.hpp"

namespace maskattn::testing_simd {

class TargetSuite : public ::testing::TestWithParam<int64_t> {
 protected:
  void SetUp() override { detail::force_simd_target(GetParam()); }
  void TearDown() override { detail::force_simd_target(0); }
};

inline std::string target_label(const ::testing::TestParamInfo<int64_t>& info) {
  return detail::simd_target_name(info.param);
}

}  // namespace maskattn::testing_simd

#define MASKATTN_INSTANTIATE_FOR_SIMD_TARGETS(suite)                                \
  INSTANTIATE_TEST_SUITE_P(Targets, suite,                                          \
                           ::testing::ValuesIn(::maskattn::detail::simd_targets()), \
                           ::maskattn::testing_simd::target_label)
