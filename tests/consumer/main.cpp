// Uses an installed maskattn through find_package(maskattn): builds a causal
// mask, runs attention on a tiny input and checks the output by hand.
#include <cmath>
#include <cstdio>

#include "maskattn/attention.hpp"
#include "maskattn/mask.hpp"
#include "maskattn/version.hpp"

int main() {
  // q, k, v, out: (B=1, H=1, L=2, D=1); scale = 1/sqrt(1) = 1.
  maskattn::Tensor<float> q({1, 1, 2, 1}), k({1, 1, 2, 1}), v({1, 1, 2, 1}), out({1, 1, 2, 1});
  q.data()[0] = 1.0f;
  q.data()[1] = 1.0f;
  k.data()[0] = 0.0f;
  k.data()[1] = std::log(3.0f);
  v.data()[0] = 10.0f;
  v.data()[1] = 20.0f;

  maskattn::attention(q.view<4>(), k.view<4>(), v.view<4>(), out.view<4>(), maskattn::causal());

  // Query 0 sees key 0 only: out = v0 = 10. Query 1 sees both keys with scores
  // (0, ln 3): weights (1/4, 3/4), out = 10/4 + 3 * 20/4 = 17.5.
  const float expected[2] = {10.0f, 17.5f};
  bool ok = true;
  for (int i = 0; i < 2; ++i) ok = ok && std::fabs(out.data()[i] - expected[i]) <= 1e-5f;
  std::printf("maskattn %s: causal attention out = [%g, %g], expected [10, 17.5] (tol 1e-5): %s\n",
              maskattn::kVersion, static_cast<double>(out.data()[0]),
              static_cast<double>(out.data()[1]), ok ? "ok" : "MISMATCH");
  return ok ? 0 : 1;
}
