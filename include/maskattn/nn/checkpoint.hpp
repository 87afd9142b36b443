// Checkpoints: a training run saved as one safetensors file and resumed from
// it, bit for bit (the resumed run computes what the run without the break
// would have computed).
//
// The file holds
//   tensors  "model.<name>"       the model's parameters (float32, state_dict names)
//            "optimizer.<key>"    the optimizer's state_dict(): step, exp_avg.*, exp_avg_sq.*
//            "extra.<name>"       the caller's tensors
//   metadata "format"             "maskattn-checkpoint-1"
//            "step"               the training loop's step (decimal)
//            "optimizer"          "Adam" or "AdamW", and "optimizer.lr", ".beta1",
//                                 ".beta2", ".eps", ".weight_decay" (shortest exact
//                                 decimal), ".no_weight_decay" (names, one a line)
//            "random_state"       every module's dropout stream: "name seed draws"
//                                 a line (the root's name is "")
//            "extra.<key>"        the caller's strings (a data sampler's state, ...)
//
// so any safetensors reader (torch, numpy) can open it.
#pragma once

#include <cstdint>
#include <map>
#include <string>

#include "maskattn/io/safetensors.hpp"
#include "maskattn/nn/adam.hpp"
#include "maskattn/nn/module.hpp"

namespace maskattn::nn {

// What the training loop adds to the model and optimizer.
struct CheckpointExtra {
  int64_t step = 0;                             // e.g. batches done; >= 0
  std::map<std::string, std::string> metadata;  // strings: a data RNG's state, the configuration
  StateDict tensors;                            // small tensors of any dtype the file takes
};

// Writes model, optimizer and extra to `path` (atomically: save_safetensors
// writes a temporary file and renames it). Error for a negative step, an
// absent extra tensor, or a file that cannot be written.
void save_checkpoint(const std::string& path, const Module& model, const Adam& optimizer,
                     const CheckpointExtra& extra = {});

// The caller's part of a loaded checkpoint. `extra.tensors` view `file`'s
// mapping: valid while this (or a copy of `file`) lives.
struct LoadedCheckpoint {
  CheckpointExtra extra;
  SafetensorsFile file;
};

// Restores model and optimizer (parameters, Adam state, the optimizer's lr,
// every module's random stream) from a file save_checkpoint wrote, and
// returns the rest. Everything is checked before anything changes; Error
// naming the file when it is not such a checkpoint, when it is one of a
// different model (its message lists the parameter names missing, unexpected
// or of another shape or dtype), when the optimizer differs (Adam vs AdamW, or
// betas, eps, weight_decay, no_weight_decay: a run resumed with other
// hyperparameters would not be the same run; lr is state, restored), or when
// the random streams belong to another module tree.
LoadedCheckpoint load_checkpoint(const std::string& path, Module& model, Adam& optimizer);

}  // namespace maskattn::nn
