// The words of a LeakReport: a one-line verdict, then what it found.
#include <fmt/format.h>

#include <string>

#include "maskattn/leak_check.hpp"

namespace maskattn {
namespace {

std::string shape_words(const LeakReport& r) {
  const MaskShape& s = r.shape;
  if (r.model) return fmt::format("(B={}, L_out={}, L_in={})", s.batch, s.q_len, s.k_len);
  return fmt::format("(B={}, H={}, Lq={}, Lk={})", s.batch, s.heads, s.q_len, s.k_len);
}

std::string runs_words(const LeakReport& r) {
  return fmt::format("{} {} run{}", r.runs, r.model ? "model" : "attention",
                     r.runs == 1 ? "" : "s");
}

}  // namespace

std::string leak_verdict(const LeakReport& r) {
  if (r.hidden_pairs == 0)
    return fmt::format("nothing checked: the expectation hides no pair of {}", shape_words(r));
  if (r.leaks_found())
    return fmt::format(
        "LEAK: {} of {} hidden pairs of {} change the output (largest change {:.3g}; {})",
        r.leak_count, r.hidden_pairs, shape_words(r), r.max_change, runs_words(r));
  const std::string unchanged = r.tolerance > 0.0f ? fmt::format("outputs within {:g}", r.tolerance)
                                                   : std::string("outputs unchanged");
  return fmt::format("no leak: all {} hidden pairs of {} checked, {} ({})", r.hidden_pairs,
                     shape_words(r), unchanged, runs_words(r));
}

std::string describe(const LeakReport& r) {
  std::string text = leak_verdict(r) + "\n";
  if (!r.leaks.empty()) {
    text +=
        r.model
            ? "  output i of row b changed when token j changed:\n     b      i      j  change\n"
            : "  query i of (b, h) changed when key j changed:\n     b      h      i      j  "
              "change\n";
    for (const Leak& l : r.leaks) {
      if (r.model)
        text += fmt::format("  {:4d}  {:5d}  {:5d}  {:.3g}\n", l.b, l.i, l.j, l.change);
      else
        text += fmt::format("  {:4d}  {:5d}  {:5d}  {:5d}  {:.3g}\n", l.b, l.h, l.i, l.j, l.change);
    }
    const int64_t more = r.leak_count - static_cast<int64_t>(r.leaks.size());
    if (more > 0) text += fmt::format("  ... and {} more\n", more);
  }
  if (r.over_masked > 0 && r.first_over_masked) {
    const auto& p = *r.first_over_masked;
    text += fmt::format(
        "note: the mask also hides {} pair{} the expectation allows, the first at (b, h, i, j) = "
        "({}, {}, {}, {}): not a leak, but queries miss keys they may see\n",
        r.over_masked, r.over_masked == 1 ? "" : "s", p[0], p[1], p[2], p[3]);
  }
  return text;
}

}  // namespace maskattn
