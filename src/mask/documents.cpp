// Packed sequences (block diagonal): query i and key j may attend iff they
// carry the same document id.
//
// Classification is exact for any ids. A tile is Full iff its query ids and
// key ids are all one and the same value, Empty iff the two id sets share no
// value. Per-position run ends (first later index whose id differs) make the
// Full test O(1) and let the Empty test walk runs instead of elements: for
// sorted ids (the usual packing) a merge over the few runs a tile touches;
// otherwise the query runs' ids are sorted and each key run is looked up.
#include <fmt/format.h>

#include <algorithm>
#include <limits>
#include <utility>
#include <vector>

#include "mask/mask_part.hpp"

namespace maskattn {
namespace {

constexpr float kNegInf = -std::numeric_limits<float>::infinity();

// Ids of (rows, len): rows = 1 (shared by the batch) or B.
class IdRows {
 public:
  IdRows(const AnyView& ids, const std::string& arg) {
    if (ids.empty()) throw Error(arg, "document ids (int32 or int64)", "nothing");
    if (ids.dtype != DType::Int32 && ids.dtype != DType::Int64)
      throw Error(arg, "dtype int32 or int64", ids.describe());
    if (ids.rank() != 1 && ids.rank() != 2)
      throw Error(arg, "rank 1 (L) or rank 2 (B, L)", ids.describe());
    shape_ = ids.shape;
    rows_ = ids.rank() == 2 ? ids.shape[0] : 1;
    len_ = ids.shape.back();
    const int64_t n = checked_mul(rows_, len_, arg);
    ids_.resize(static_cast<std::size_t>(n));
    run_end_.resize(static_cast<std::size_t>(n));
    sorted_.assign(static_cast<std::size_t>(rows_), 1);
    std::vector<int64_t> index(shape_.size());
    for (int64_t r = 0; r < rows_; ++r) {
      int64_t* id = ids_.data() + r * len_;
      for (int64_t i = 0; i < len_; ++i) {
        if (ids.rank() == 2)
          index = {r, i};
        else
          index = {i};
        id[i] = ids.at_int(index);
        if (i > 0 && id[i] < id[i - 1]) sorted_[static_cast<std::size_t>(r)] = 0;
      }
      int64_t* end = run_end_.data() + r * len_;
      for (int64_t i = len_ - 1; i >= 0; --i)
        end[i] = (i + 1 < len_ && id[i + 1] == id[i]) ? end[i + 1] : i + 1;
    }
  }

  int64_t rows() const noexcept { return rows_; }
  int64_t len() const noexcept { return len_; }
  const std::vector<int64_t>& shape() const noexcept { return shape_; }
  const int64_t* ids(int64_t b) const noexcept { return ids_.data() + row(b) * len_; }
  const int64_t* run_end(int64_t b) const noexcept { return run_end_.data() + row(b) * len_; }
  bool sorted(int64_t b) const noexcept { return sorted_[static_cast<std::size_t>(row(b))] != 0; }

 private:
  int64_t row(int64_t b) const noexcept { return rows_ == 1 ? 0 : b; }

  std::vector<int64_t> shape_;
  int64_t rows_ = 1, len_ = 0;
  std::vector<int64_t> ids_;      // (rows, len)
  std::vector<int64_t> run_end_;  // (rows, len): first index > i with another id, or len
  std::vector<uint8_t> sorted_;   // (rows): ids non-decreasing
};

class BoundDocuments final : public detail::BoundMaskPart {
 public:
  BoundDocuments(std::shared_ptr<const IdRows> q, std::shared_ptr<const IdRows> k)
      : q_(std::move(q)), k_(std::move(k)) {}

  TileClass classify(int64_t b, int64_t, int64_t q0, int64_t q1, int64_t k0,
                     int64_t k1) const override {
    const int64_t* qi = q_->ids(b);
    const int64_t* ki = k_->ids(b);
    const int64_t* qe = q_->run_end(b);
    const int64_t* ke = k_->run_end(b);
    if (qe[q0] >= q1 && ke[k0] >= k1 && qi[q0] == ki[k0]) return TileClass::Full;
    return shares_id(b, qi, qe, q0, q1, ki, ke, k0, k1) ? TileClass::Partial : TileClass::Empty;
  }

  void apply_row(int64_t b, int64_t, int64_t i, int64_t k0, int64_t k1, float* row) const override {
    const int64_t id = q_->ids(b)[i];
    const int64_t* ki = k_->ids(b);
    for (int64_t j = k0; j < k1; ++j)
      if (ki[j] != id) row[j - k0] = kNegInf;
  }

  void apply_tile(int64_t b, int64_t, int64_t q0, int64_t q1, int64_t k0, int64_t k1, float* tile,
                  int64_t ld) const override {
    const int64_t* qi = q_->ids(b) + q0;
    const int64_t* ki = k_->ids(b);
    for (int64_t j = k0; j < k1; ++j) {
      float* r = tile + (j - k0) * ld;
      const int64_t id = ki[j];
      for (int64_t i = 0; i < q1 - q0; ++i) r[i] = qi[i] == id ? r[i] : kNegInf;
    }
  }

 private:
  // Whether some id occurs both in qi[q0, q1) and in ki[k0, k1).
  bool shares_id(int64_t b, const int64_t* qi, const int64_t* qe, int64_t q0, int64_t q1,
                 const int64_t* ki, const int64_t* ke, int64_t k0, int64_t k1) const {
    if (q_->sorted(b) && k_->sorted(b)) {
      // Merge the two sorted run sequences.
      int64_t i = q0, j = k0;
      while (i < q1 && j < k1) {
        if (qi[i] == ki[j]) return true;
        if (qi[i] < ki[j])
          i = qe[i];
        else
          j = ke[j];
      }
      return false;
    }
    std::vector<int64_t> seen;
    for (int64_t i = q0; i < q1; i = qe[i]) seen.push_back(qi[i]);
    std::sort(seen.begin(), seen.end());
    for (int64_t j = k0; j < k1; j = ke[j])
      if (std::binary_search(seen.begin(), seen.end(), ki[j])) return true;
    return false;
  }

  std::shared_ptr<const IdRows> q_, k_;
};

class DocumentsPart final : public detail::MaskPart {
 public:
  // k == nullptr: self attention, the query ids are the key ids.
  DocumentsPart(std::shared_ptr<const IdRows> q, std::shared_ptr<const IdRows> k)
      : q_(std::move(q)), k_(std::move(k)) {}

  std::string describe() const override {
    if (!k_) return fmt::format("documents({})", shape_string(q_->shape()));
    return fmt::format("documents({}, {})", shape_string(q_->shape()), shape_string(k_->shape()));
  }

  std::shared_ptr<const detail::BoundMaskPart> bind(const MaskShape& s) const override {
    const std::string arg = "mask: documents";
    if (!k_) {
      if (s.q_len != s.k_len || q_->len() != s.q_len)
        throw Error(arg,
                    fmt::format("self-attention ids of length L = Lq = Lk, bound to (B, H, Lq, "
                                "Lk) = ({}, {}, {}, {})",
                                s.batch, s.heads, s.q_len, s.k_len),
                    fmt::format("ids of shape {}", shape_string(q_->shape())));
    } else {
      check_fits(*q_, "query_ids", s.q_len, "Lq", s);
      check_fits(*k_, "key_ids", s.k_len, "Lk", s);
    }
    if (q_->rows() != 1 && q_->rows() != s.batch)
      throw Error(arg, fmt::format("ids of shape (L) or (B = {}, L)", s.batch),
                  fmt::format("ids of shape {}", shape_string(q_->shape())));
    return std::make_shared<BoundDocuments>(q_, k_ ? k_ : q_);
  }

 private:
  static void check_fits(const IdRows& ids, const char* name, int64_t len, const char* len_name,
                         const MaskShape& s) {
    if (ids.len() != len || (ids.rows() != 1 && ids.rows() != s.batch))
      throw Error(
          fmt::format("mask: documents {}", name),
          fmt::format("shape ({0}) or (B, {0}) with B = {1}, {0} = {2}", len_name, s.batch, len),
          fmt::format("shape {}", shape_string(ids.shape())));
  }

  std::shared_ptr<const IdRows> q_, k_;
};

}  // namespace

Mask documents(const AnyView& ids) {
  return Mask(std::make_shared<DocumentsPart>(std::make_shared<const IdRows>(ids, "documents: ids"),
                                              nullptr));
}

Mask documents(const AnyView& query_ids, const AnyView& key_ids) {
  return Mask(std::make_shared<DocumentsPart>(
      std::make_shared<const IdRows>(query_ids, "documents: query_ids"),
      std::make_shared<const IdRows>(key_ids, "documents: key_ids")));
}

}  // namespace maskattn
