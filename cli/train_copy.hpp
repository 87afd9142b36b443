// The copy task, trained and tested: the showcase of `maskattn demo` (and of
// `maskattn demo --no-look-ahead`, the same model trained without the
// decoder's look-ahead mask, side by side with the real run).
#pragma once

#include <cstdint>
#include <functional>
#include <string>

#include "maskattn/models/copy_task.hpp"
#include "maskattn/viz/image.hpp"

namespace maskattn::cli {

struct CopyShowcaseOptions {
  models::CopyTaskOptions task;  // 10 symbols, lengths 4..12
  int64_t steps = 3000;
  int64_t batch = 128;
  int64_t heldout = 1000;  // held-out sequences for the exact-sequence accuracy
  uint64_t seed = 1;
  // The model: a small encoder-decoder Transformer.
  int64_t d_model = 64, heads = 4, layers = 2, dim_feedforward = 256;
  double dropout = 0.0;
  int64_t warmup = 400;
  int64_t cooldown = 1000;     // last steps over which the rate falls linearly
  bool no_look_ahead = false;  // also train without the look-ahead mask and compare
};

// Pictures the showcase draws of its trained model (name, image).
using SavePicture = std::function<void(const std::string& name, const viz::Image& image)>;

// Trains, decodes held-out sequences, prints the results; draws the trained
// model's attention through `save`.
void run_copy_showcase(const CopyShowcaseOptions& options, const SavePicture& save);

}  // namespace maskattn::cli
