// Test matcher for the library's errors: f() must throw maskattn::Error whose
// message contains `needle` (usually the argument's name).
#pragma once

#include <gtest/gtest.h>

#include <exception>
#include <string_view>

#include "maskattn/error.hpp"

namespace maskattn::testing_errors {

template <class F>
::testing::AssertionResult throws_error_naming(F&& f, std::string_view needle) {
  try {
    f();
  } catch (const Error& e) {
    if (std::string_view(e.what()).find(needle) != std::string_view::npos)
      return ::testing::AssertionSuccess();
    return ::testing::AssertionFailure() << "Error without \"" << needle << "\": " << e.what();
  } catch (const std::exception& e) {
    return ::testing::AssertionFailure() << "not a maskattn::Error: " << e.what();
  }
  return ::testing::AssertionFailure() << "no exception (wanted one naming \"" << needle << "\")";
}

}  // namespace maskattn::testing_errors
