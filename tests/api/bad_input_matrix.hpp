// The bad-input matrix: every public entry point of include/maskattn/ against
// the kinds of bad input users bring (issue 9). One row is one entry point x
// one bad input, and says what must happen:
//   - an Error whose argument() names the offending argument (`argument`), or
//   - a documented, defined result (`argument` empty: `run` asserts the value
//     itself), or
//   - a reference to an existing test that already covers the row
//     (`covered_by`, "Suite.Name"; the matrix checks that test exists).
// Nothing may abort. Rows are registered per area (bad_input_*_test.cpp) and
// run as one parameterised test each (BadInput/Matrix.<n>_<entry>_<kind>);
// bad_input_test.cpp checks that every public header has rows and prints
// the counts.
#pragma once

#include <cmath>
#include <cstdint>
#include <functional>
#include <limits>
#include <ostream>
#include <string>
#include <string_view>
#include <utility>
#include <vector>

#include "attention/attention_oracle.hpp"
#include "maskattn/error.hpp"

namespace maskattn::testing_bad_input {

// The kinds of bad input of issue 9's matrix.
enum class Bad {
  Rank,        // an AnyView / tensor of the wrong rank
  Dims,        // mismatched dimensions between arguments
  ZeroSize,    // a zero-size dimension
  Negative,    // a negative size, index or count
  Huge,        // sizes whose products overflow int64 (L*L*B*H), strides past int64
  MaskDims,    // a mask of the wrong shape for the call
  MaskDtype,   // a mask (or id array) of the wrong dtype
  NonFinite,   // NaN / Inf inputs or options
  TokenId,     // token ids outside the vocabulary
  EmptyBatch,  // no sequences / sentences / rows at all
  Option,      // an option outside its documented range
  Absent,      // an absent (empty) view or function where one is required
  Bytes,       // malformed files and byte streams, invalid UTF-8
};
inline constexpr int kBadKinds = 13;
using enum Bad;

inline std::string_view bad_name(Bad b) {
  constexpr std::string_view names[kBadKinds] = {
      "Rank", "Dims",    "ZeroSize",   "Negative", "Huge",   "MaskShape", "MaskDtype",
      "NaN",  "TokenId", "EmptyBatch", "Option",   "Absent", "Bytes"};
  return names[static_cast<int>(b)];
}

struct Case {
  std::string header;  // under include/maskattn/: "attention.hpp", "nn/linear.hpp"
  std::string entry;   // "attention", "Linear::forward"
  Bad bad;
  std::string what;      // the bad input, in words
  std::string argument;  // Error::argument() wanted; empty: a defined result
  std::function<void()> run;
  std::string covered_by;  // "Suite.Test" that covers this row instead of run
};

// gtest prints a row by its words, not its bytes.
inline void PrintTo(const Case& c, std::ostream* os) {
  *os << c.header << ": " << c.entry << " with " << c.what;
}

inline std::vector<Case>& registry() {
  static std::vector<Case> cases;
  return cases;
}

// At static initialisation: MASKATTN_BAD_INPUT_ROWS(area) { return {...}; }
inline bool register_cases(std::vector<Case> cases) {
  for (Case& c : cases) registry().push_back(std::move(c));
  return true;
}
#define MASKATTN_BAD_INPUT_ROWS(area)                                      \
  std::vector<::maskattn::testing_bad_input::Case> area##_matrix_rows();   \
  [[maybe_unused]] static const bool area##_registered =                   \
      ::maskattn::testing_bad_input::register_cases(area##_matrix_rows()); \
  std::vector<::maskattn::testing_bad_input::Case> area##_matrix_rows()

// Row builders.
inline Case error(std::string header, std::string entry, Bad bad, std::string what,
                  std::string argument, std::function<void()> run) {
  return {std::move(header),   std::move(entry), bad, std::move(what),
          std::move(argument), std::move(run),   {}};
}
inline Case defined(std::string header, std::string entry, Bad bad, std::string what,
                    std::function<void()> run) {
  return {std::move(header), std::move(entry), bad, std::move(what), {}, std::move(run), {}};
}
inline Case covered(std::string header, std::string entry, Bad bad, std::string what,
                    std::string test) {
  return {std::move(header), std::move(entry), bad, std::move(what), {}, {}, std::move(test)};
}

inline constexpr float kNaNf = std::numeric_limits<float>::quiet_NaN();
inline constexpr float kInff = std::numeric_limits<float>::infinity();
inline constexpr double kNaN = std::numeric_limits<double>::quiet_NaN();
inline constexpr double kInf = std::numeric_limits<double>::infinity();
inline constexpr int64_t kMax64 = std::numeric_limits<int64_t>::max();
// A size whose square overflows int64 (and size_t).
inline constexpr int64_t kHugeSide = int64_t{1} << 32;

}  // namespace maskattn::testing_bad_input
