// The reference backend (internal): the textbook path, row by row in double
// precision. Slow and obviously correct: the oracle for every faster backend.
#pragma once

#include "attention/attention_call.hpp"

namespace maskattn::detail {

void attention_reference(const AttentionCall& call);

}  // namespace maskattn::detail
