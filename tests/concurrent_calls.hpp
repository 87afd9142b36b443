// Concurrent calls checked against single-threaded ones (the stress tests of
// tests/attention/concurrent_attention_test.cpp and
// tests/nn/concurrent_modules_test.cpp; under ThreadSanitizer in the tsan
// preset). A Call is one library call on shared, read-only inputs that writes
// outputs of its own and returns them (all floats, concatenated). Each call
// runs once on the test's thread for the expected bits; then many std::threads,
// released together, each run every call several rounds, each thread in its
// own order, so different calls (backends, masks, shapes, modules) overlap.
// Every result must equal the expected one bit for bit: the library promises
// results that depend only on the input, the thread count and the seed
// (docs/threads.md), and each std::thread gets the same OpenMP thread count.
#pragma once

#include <gtest/gtest.h>

#include <cstdint>
#include <cstring>
#include <exception>
#include <functional>
#include <latch>
#include <string>
#include <thread>
#include <vector>

#include "maskattn/tensor.hpp"

namespace maskattn::testing_threads {

struct Call {
  std::string name;
  std::function<std::vector<float>()> run;
};

// Appends a tensor's elements (contiguous, row-major) to a call's result.
template <class T>
void append(std::vector<float>& result, const Tensor<T>& t) {
  for (int64_t i = 0; i < t.numel(); ++i) result.push_back(static_cast<float>(t.data()[i]));
}

struct StressSize {
  int threads;
  int rounds;  // each thread runs every call this many times
};

// Runs `calls` as above; fails naming the first call whose result differs from
// its single-threaded one (or that threw), with the number of such results.
inline ::testing::AssertionResult same_bits_when_concurrent(const std::vector<Call>& calls,
                                                            StressSize size) {
  std::vector<std::vector<float>> want;
  for (const Call& c : calls) want.push_back(c.run());
  const std::size_t n = calls.size();
  std::vector<int64_t> mismatches(static_cast<std::size_t>(size.threads), 0);
  std::vector<std::string> first(static_cast<std::size_t>(size.threads));
  std::latch start(size.threads);
  std::vector<std::thread> threads;
  for (int t = 0; t < size.threads; ++t)
    threads.emplace_back([&, t] {
      const auto ti = static_cast<std::size_t>(t);
      start.arrive_and_wait();
      for (int r = 0; r < size.rounds; ++r)
        for (std::size_t x = 0; x < n; ++x) {
          // Thread t starts at call t (and odd threads walk backwards).
          const std::size_t i = t % 2 ? (n - 1 - (x + ti) % n) : (x + ti) % n;
          std::string failure;
          try {
            const std::vector<float> got = calls[i].run();
            if (got.size() != want[i].size() ||
                std::memcmp(got.data(), want[i].data(), got.size() * sizeof(float)) != 0)
              failure = "differs from the single-threaded result";
          } catch (const std::exception& e) {
            failure = std::string("threw: ") + e.what();
          }
          if (!failure.empty() && mismatches[ti]++ == 0)
            first[ti] = calls[i].name + " (thread " + std::to_string(t) + ", round " +
                        std::to_string(r) + "): " + failure;
        }
    });
  for (std::thread& th : threads) th.join();
  int64_t total = 0;
  std::string example;
  for (std::size_t t = 0; t < mismatches.size(); ++t) {
    total += mismatches[t];
    if (example.empty()) example = first[t];
  }
  if (total == 0) return ::testing::AssertionSuccess();
  return ::testing::AssertionFailure()
         << total << " of " << int64_t{size.threads} * size.rounds * static_cast<int64_t>(n)
         << " concurrent results wrong; first: " << example;
}

}  // namespace maskattn::testing_threads
