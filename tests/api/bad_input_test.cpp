// Runs the bad-input matrix (bad_input_matrix.hpp): one test per row, named
// BadInput/Matrix.<n>_<entry>_<kind>; checks that every public header has
// rows; prints the matrix's counts per header and kind.
#include <gtest/gtest.h>

#include <array>
#include <cctype>
#include <cstdio>
#include <filesystem>
#include <map>
#include <set>
#include <string>

#include "api/bad_input_matrix.hpp"
#include "attention/attention_oracle.hpp"

namespace maskattn::testing_bad_input {
namespace {

class BadInput : public ::testing::TestWithParam<Case> {};

TEST_P(BadInput, Row) {
  const Case& c = GetParam();
  SCOPED_TRACE(c.header + ": " + c.entry + " with " + c.what);
  if (!c.covered_by.empty()) {
    // A row another test covers: that test must exist.
    bool found = false;
    const ::testing::UnitTest& unit = *::testing::UnitTest::GetInstance();
    for (int s = 0; s < unit.total_test_suite_count() && !found; ++s) {
      const ::testing::TestSuite& suite = *unit.GetTestSuite(s);
      for (int t = 0; t < suite.total_test_count() && !found; ++t) {
        const std::string name =
            std::string(suite.name()) + "." + std::string(suite.GetTestInfo(t)->name());
        found = name == c.covered_by || name.find("/" + c.covered_by) != std::string::npos ||
                (name.find(c.covered_by + "/") == 0);
      }
    }
    EXPECT_TRUE(found) << "no test " << c.covered_by;
    return;
  }
  if (c.argument.empty()) {
    try {
      c.run();
    } catch (const std::exception& e) {
      ADD_FAILURE() << "a defined result was wanted, got an exception: " << e.what();
    }
    return;
  }
  EXPECT_TRUE(testing_attention::throws_error_for(c.run, c.argument));
}

std::string row_name(const ::testing::TestParamInfo<Case>& info) {
  std::string name = std::to_string(info.index) + "_" + info.param.entry + "_" +
                     std::string(bad_name(info.param.bad));
  for (char& ch : name)
    if (!std::isalnum(static_cast<unsigned char>(ch))) ch = '_';
  return name;
}

INSTANTIATE_TEST_SUITE_P(Matrix, BadInput, ::testing::ValuesIn(registry()), row_name);

// Every header under include/maskattn/ has rows: a new public header fails
// here until the matrix covers it.
TEST(BadInputMatrix, CoversEveryPublicHeader) {
  const std::filesystem::path root =
      std::filesystem::path(MASKATTN_TEST_DATA_DIR) / ".." / ".." / "include" / "maskattn";
  ASSERT_TRUE(std::filesystem::is_directory(root)) << root;
  std::set<std::string> headers, covered;
  for (const auto& e : std::filesystem::recursive_directory_iterator(root))
    if (e.is_regular_file() && e.path().extension() == ".hpp")
      headers.insert(e.path().lexically_relative(root).generic_string());
  for (const Case& c : registry()) covered.insert(c.header);
  EXPECT_GE(headers.size(), 40u);
  for (const std::string& h : headers) EXPECT_TRUE(covered.count(h)) << "no rows for " << h;
  for (const std::string& h : covered) EXPECT_TRUE(headers.count(h)) << "rows for unknown " << h;
}

// The counts, header x kind, for the report (printed, and sanity-checked).
TEST(BadInputMatrix, Counts) {
  std::map<std::string, std::array<int, kBadKinds + 1>> table;
  std::array<int, kBadKinds + 1> total{};
  std::set<std::string> entries;
  int errors = 0, defined_results = 0, references = 0;
  for (const Case& c : registry()) {
    auto& row = table[c.header];
    ++row[static_cast<int>(c.bad)], ++row[kBadKinds];
    ++total[static_cast<int>(c.bad)], ++total[kBadKinds];
    entries.insert(c.header + " " + c.entry);
    if (!c.covered_by.empty())
      ++references;
    else if (c.argument.empty())
      ++defined_results;
    else
      ++errors;
  }
  std::printf("%-28s", "header");
  for (int b = 0; b < kBadKinds; ++b)
    std::printf(" %6.6s", std::string(bad_name(static_cast<Bad>(b))).c_str());
  std::printf(" %6s\n", "rows");
  auto print = [](const std::string& name, const std::array<int, kBadKinds + 1>& r) {
    std::printf("%-28s", name.c_str());
    for (int x : r) std::printf(" %6d", x);
    std::printf("\n");
  };
  for (const auto& [h, r] : table) print(h, r);
  print("total", total);
  std::printf("%zu entry points, %d rows: %d Errors, %d defined results, %d covered elsewhere\n",
              entries.size(), total[kBadKinds], errors, defined_results, references);
  EXPECT_EQ(errors + defined_results + references, total[kBadKinds]);
}

}  // namespace
}  // namespace maskattn::testing_bad_input
