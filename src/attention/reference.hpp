// The reference backend (internal): the textbook path, row by row in double
// precision. Slow and obviously correct: the oracle for every faster backend.
#pragma once

#include "attention/attention_call.hpp"

namespace maskattn::detail {

void attention_reference(const AttentionCall& call);

// Its backward (attention/reference_backward.cpp), also in double precision.
void attention_backward_reference(const BackwardCall& call);

}  // namespace maskattn::detail
