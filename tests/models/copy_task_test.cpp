// CopyTask: batches are a pure function of (seed, index), shaped for teacher
// forcing; the held-out split never meets the training split; count_exact
// reads greedy_decode's rows.
#include "maskattn/models/copy_task.hpp"

#include <gtest/gtest.h>

#include <set>
#include <vector>

#include "throws_error.hpp"

namespace maskattn::models {
namespace {

using testing_errors::throws_error_naming;

std::vector<int64_t> row(const Seq2SeqBatch& b, int64_t i) {
  const int64_t s = b.src.size(1), len = b.src_lengths[static_cast<std::size_t>(i)];
  return {b.src.data() + i * s, b.src.data() + i * s + len};
}

TEST(CopyTask, BatchesAreShapedForTeacherForcing) {
  const CopyTask task({13, 3, 7});
  const Seq2SeqBatch b = task.batch(9, 4, 50);
  ASSERT_EQ(b.src.shape(), (std::vector<int64_t>{50, 7}));
  ASSERT_EQ(b.tgt_in.shape(), (std::vector<int64_t>{50, 8}));
  ASSERT_EQ(b.tgt_out.shape(), (std::vector<int64_t>{50, 8}));
  int64_t counted = 0;
  std::set<int64_t> lengths;
  for (int64_t i = 0; i < 50; ++i) {
    const int64_t len = b.src_lengths[static_cast<std::size_t>(i)];
    lengths.insert(len);
    ASSERT_GE(len, 3);
    ASSERT_LE(len, 7);
    const int64_t* src = b.src.data() + i * 7;
    const int64_t* in = b.tgt_in.data() + i * 8;
    const int64_t* out = b.tgt_out.data() + i * 8;
    EXPECT_EQ(in[0], CopyTask::kStart);
    for (int64_t j = 0; j < 7; ++j) {
      if (j < len) {
        EXPECT_GE(src[j], CopyTask::kFirstSymbol);
        EXPECT_LT(src[j], 13);
        EXPECT_EQ(in[j + 1], src[j]);
        EXPECT_EQ(out[j], src[j]);
      } else {
        EXPECT_EQ(src[j], CopyTask::kPad);
      }
    }
    EXPECT_EQ(out[len], CopyTask::kEnd);
    for (int64_t j = len + 1; j < 8; ++j) EXPECT_EQ(out[j], CopyTask::kIgnore);
    for (int64_t j = len + 1; j < 8; ++j) EXPECT_EQ(in[j], CopyTask::kPad);
    counted += len + 1;
  }
  EXPECT_EQ(b.target_tokens(), counted);
  EXPECT_EQ(lengths.size(), 5u) << "every length 3..7 drawn in 50 sequences";
}

TEST(CopyTask, SameSeedAndIndexSameBatch) {
  const CopyTask task;
  const Seq2SeqBatch a = task.batch(1, 7, 16), b = task.batch(1, 7, 16), c = task.batch(1, 8, 16),
                     d = task.batch(2, 7, 16);
  EXPECT_TRUE(std::equal(a.src.begin(), a.src.end(), b.src.begin()));
  EXPECT_EQ(a.src_lengths, b.src_lengths);
  EXPECT_FALSE(std::equal(a.src.begin(), a.src.end(), c.src.begin()));
  EXPECT_FALSE(std::equal(a.src.begin(), a.src.end(), d.src.begin()));
}

TEST(CopyTask, HeldOutSequencesNeverTrain) {
  const CopyTask task({6, 2, 4});  // 3 symbols, lengths 2..4: few sequences, many repeats
  std::set<std::vector<int64_t>> train, heldout;
  for (int64_t k = 0; k < 20; ++k) {
    const Seq2SeqBatch t = task.batch(3, k, 64), h = task.batch(3, k, 64, Split::HeldOut);
    for (int64_t i = 0; i < 64; ++i) {
      train.insert(row(t, i));
      heldout.insert(row(h, i));
      EXPECT_EQ(CopyTask::split_of(row(h, i).data(), static_cast<int64_t>(row(h, i).size())),
                Split::HeldOut);
    }
  }
  EXPECT_GT(heldout.size(), 1u);
  for (const auto& s : heldout) EXPECT_EQ(train.count(s), 0u) << "a held-out sequence trained";
  // 3 + 9 + 27 + 81 = 117 sequences of lengths 2..4 over 3 symbols: one in 16 held out.
  EXPECT_GT(train.size(), 90u);
}

TEST(CopyTask, CountExactReadsGreedyRows) {
  const CopyTask task({13, 2, 3});
  const Seq2SeqBatch b = task.batch(0, 0, 3);
  Tensor<int64_t> decoded({3, 5});
  std::fill(decoded.begin(), decoded.end(), CopyTask::kEnd);
  for (int64_t i = 0; i < 3; ++i) {
    decoded.data()[i * 5] = CopyTask::kStart;
    const std::vector<int64_t> r = row(b, i);
    std::copy(r.begin(), r.end(), decoded.data() + i * 5 + 1);
  }
  EXPECT_EQ(task.count_exact(b, decoded.view<2>()), 3);
  EXPECT_EQ(CopyTask::symbols(decoded.view<2>(), 1), row(b, 1));
  decoded.data()[1 * 5 + 1] = decoded.data()[1 * 5 + 1] == 3 ? 4 : 3;  // a wrong symbol
  EXPECT_EQ(task.count_exact(b, decoded.view<2>()), 2);
  // No EOS after the symbols: not exact.
  const int64_t len = b.src_lengths[0];
  decoded.data()[len + 1] = CopyTask::kFirstSymbol;
  EXPECT_EQ(task.count_exact(b, decoded.view<2>()), 1);
  EXPECT_TRUE(throws_error_naming(
      [&] {
        task.count_exact(b, View<const int64_t, 2>(decoded.data(), {2, 5}));
      },
      "decoded"));
}

// A batch whose src_lengths do not match src (fewer lengths than rows, or a
// length past src's width) read outside the lengths and src: now an Error
// naming src_lengths before anything is read.
TEST(CopyTask, CountExactChecksTheLengths) {
  const CopyTask task({13, 2, 3});
  Seq2SeqBatch b = task.batch(0, 0, 3);
  const Tensor<int64_t> decoded({3, 5});
  Seq2SeqBatch short_lengths = b;
  short_lengths.src_lengths.resize(1);
  EXPECT_TRUE(throws_error_naming([&] { task.count_exact(short_lengths, decoded.view<2>()); },
                                  "count_exact: src_lengths: expected 3 lengths"));
  for (const int64_t bad : {int64_t{-1}, b.src.size(1) + 1, int64_t{1} << 62}) {
    Seq2SeqBatch wrong = b;
    wrong.src_lengths[2] = bad;
    EXPECT_TRUE(throws_error_naming([&] { task.count_exact(wrong, decoded.view<2>()); },
                                    "count_exact: src_lengths[2]"))
        << bad;
  }
}

// n whose ids overflow int64 failed at the first Tensor ("Tensor shape"):
// now an Error naming n.
TEST(CopyTask, BatchSizeWhoseProductOverflowsNamesN) {
  const CopyTask task;
  EXPECT_TRUE(throws_error_naming([&] { task.batch(0, 0, int64_t{1} << 62); },
                                  "CopyTask::batch: n: expected a size product"));
}

TEST(CopyTask, Errors) {
  EXPECT_TRUE(throws_error_naming([] { CopyTask({3, 1, 2}); }, "vocab"));
  EXPECT_TRUE(throws_error_naming([] { CopyTask({13, 0, 2}); }, "min_len"));
  EXPECT_TRUE(throws_error_naming([] { CopyTask({13, 5, 4}); }, "min_len"));
  const CopyTask task;
  EXPECT_TRUE(throws_error_naming([&] { task.batch(0, -1, 4); }, "index"));
  EXPECT_TRUE(throws_error_naming([&] { task.batch(0, 0, 0); }, "n"));
  // One symbol, length 1: a single sequence, so one split is empty.
  const CopyTask tiny({4, 1, 1});
  const Split empty = CopyTask::split_of(std::vector<int64_t>{3}.data(), 1) == Split::Train
                          ? Split::HeldOut
                          : Split::Train;
  EXPECT_TRUE(throws_error_naming([&] { tiny.batch(0, 0, 1, empty); }, "vocab"));
}

}  // namespace
}  // namespace maskattn::models
