// Bit allocation (MixDQ's integer program): one candidate per layer, minimising the summed sensitivity under a
// budget on the summed cost:
//
//   minimise  sum_l s[l][c_l]   subject to  sum_l cost[l][c_l] <= budget,   c_l in candidates of layer l
//
// A multiple-choice knapsack, solved by dynamic programming over the cost. Costs are integers (weight bits x
// elements, file bytes, nanoseconds: whatever the budget is in); they are divided by the greatest common divisor
// of every cost difference within a layer first, which keeps the table small for the usual costs (bits x N x K with N K a
// multiple of 64). The solution is then exact (result.exact). When the table would still exceed `max_states`
// cost units, costs are rounded up to a coarser unit: the solution stays within budget (the true costs are
// checked), and result.exact is false, so the caller knows it is not proven optimal.
//
// Errors (tcomp::error naming the problem): no layers, a layer without candidates, a negative cost, a
// sensitivity that is not finite, a budget below the cheapest assignment or above the dearest (the budget then
// constrains nothing, which is almost always a unit mistake).
#pragma once

#include <algorithm>
#include <cmath>
#include <cstddef>
#include <cstdint>
#include <limits>
#include <numeric>
#include <span>
#include <string>
#include <vector>

#include "tcomp/core/error.hpp"

namespace tcomp::model {

struct allocation_candidate {
    std::string policy;        // what the layer becomes (a policy name or descriptor spelling)
    std::int64_t cost = 0;     // in the budget's unit, >= 0
    double sensitivity = 0.0;  // the loss this choice adds (lower is better), finite
};

struct allocation_layer {
    std::string name;
    std::vector<allocation_candidate> candidates;
};

struct allocation_result {
    std::vector<std::size_t> choice;  // index of the candidate per layer
    std::int64_t cost = 0;            // summed cost of the choice (<= budget)
    double sensitivity = 0.0;         // summed sensitivity
    bool exact = true;                // proven optimal (false: costs were rounded up to fit max_states)
};

/// The cheapest and the dearest total cost.
inline std::pair<std::int64_t, std::int64_t> allocation_cost_range(std::span<const allocation_layer> layers) {
    std::int64_t lo = 0, hi = 0;
    for (const allocation_layer& l : layers) {
        if (l.candidates.empty()) tcomp::detail::throw_error<error>("allocate_bits: layer ", l.name, " has no candidates");
        std::int64_t a = std::numeric_limits<std::int64_t>::max(), b = 0;
        for (const allocation_candidate& c : l.candidates) {
            if (c.cost < 0)
                tcomp::detail::throw_error<error>("allocate_bits: layer ", l.name, ", candidate ", c.policy,
                                                  ": negative cost ", c.cost);
            if (!std::isfinite(c.sensitivity))
                tcomp::detail::throw_error<error>("allocate_bits: layer ", l.name, ", candidate ", c.policy,
                                                  ": sensitivity is not finite");
            a = std::min(a, c.cost), b = std::max(b, c.cost);
        }
        if (lo > std::numeric_limits<std::int64_t>::max() - a || hi > std::numeric_limits<std::int64_t>::max() - b)
            tcomp::detail::throw_error<error>("allocate_bits: the summed costs overflow 64 bits");
        lo += a, hi += b;
    }
    return {lo, hi};
}

inline allocation_result allocate_bits(std::span<const allocation_layer> layers, std::int64_t budget,
                                       std::int64_t max_states = std::int64_t{1} << 18) {
    if (layers.empty()) tcomp::detail::throw_error<error>("allocate_bits: no layers");
    const auto [lo, hi] = allocation_cost_range(layers);
    if (budget < lo)
        tcomp::detail::throw_error<error>("allocate_bits: budget ", budget, " is below the cheapest assignment (", lo,
                                          "); the budget must lie in [", lo, ", ", hi, "]");
    if (budget > hi)
        tcomp::detail::throw_error<error>("allocate_bits: budget ", budget, " is above the dearest assignment (", hi,
                                          "): it constrains nothing; the budget must lie in [", lo, ", ", hi, "]");
    // Costs are shifted by each layer's cheapest so the table only spans the slack budget - lo. The unit: the
    // gcd of every shifted cost, so every reachable extra cost is a multiple of it and floor(slack / unit) units
    // lose nothing (exact); or coarser, when that table would be too large.
    const std::int64_t slack = budget - lo;
    std::int64_t unit = 0;
    for (const allocation_layer& l : layers) {
        std::int64_t cheapest = std::numeric_limits<std::int64_t>::max();
        for (const allocation_candidate& c : l.candidates) cheapest = std::min(cheapest, c.cost);
        for (const allocation_candidate& c : l.candidates) unit = std::gcd(unit, c.cost - cheapest);
    }
    if (unit == 0) unit = 1;  // every layer's candidates cost the same: any unit works
    bool exact = true;
    if (slack / unit + 1 > max_states) {
        unit = (slack + max_states - 2) / (max_states - 1);  // slack / unit + 1 <= max_states
        exact = false;
    }
    const auto states = static_cast<std::size_t>(slack / unit + 1);
    const std::size_t n = layers.size();
    constexpr double inf = std::numeric_limits<double>::infinity();
    // best[s]: least sensitivity of the layers so far with a (rounded) extra cost of exactly s units;
    // from[l][s]: the candidate layer l took on the way to s.
    std::vector<double> best(states, inf), next(states);
    best[0] = 0.0;
    std::vector<std::vector<std::uint16_t>> from(n, std::vector<std::uint16_t>(states, 0));
    for (std::size_t l = 0; l < n; ++l) {
        const auto& cands = layers[l].candidates;
        if (cands.size() > 65535)
            tcomp::detail::throw_error<error>("allocate_bits: layer ", layers[l].name, " has more than 65535 candidates");
        std::int64_t cheapest = std::numeric_limits<std::int64_t>::max();
        for (const allocation_candidate& c : cands) cheapest = std::min(cheapest, c.cost);
        std::fill(next.begin(), next.end(), inf);
        for (std::size_t k = 0; k < cands.size(); ++k) {
            const std::int64_t extra = cands[k].cost - cheapest;
            const auto step = static_cast<std::size_t>((extra + unit - 1) / unit);  // rounded up: never over budget
            if (step >= states) continue;
            for (std::size_t s = 0; s + step < states; ++s) {
                if (best[s] == inf) continue;
                const double v = best[s] + cands[k].sensitivity;
                if (v < next[s + step]) next[s + step] = v, from[l][s + step] = static_cast<std::uint16_t>(k);
            }
        }
        best.swap(next);
    }
    std::size_t end = 0;
    for (std::size_t s = 1; s < states; ++s)
        if (best[s] < best[end]) end = s;
    allocation_result r;
    r.exact = exact;
    r.choice.assign(n, 0);
    std::size_t s = end;
    for (std::size_t l = n; l-- > 0;) {
        const auto& cands = layers[l].candidates;
        std::int64_t cheapest = std::numeric_limits<std::int64_t>::max();
        for (const allocation_candidate& c : cands) cheapest = std::min(cheapest, c.cost);
        const std::size_t k = from[l][s];
        r.choice[l] = k;
        s -= static_cast<std::size_t>((cands[k].cost - cheapest + unit - 1) / unit);
        r.cost += cands[k].cost;
        r.sensitivity += cands[k].sensitivity;
    }
    if (r.cost > budget)  // cannot happen (costs were rounded up); a guard, never a silent over-budget answer
        tcomp::detail::throw_error<error>("allocate_bits: internal error: the solution costs ", r.cost,
                                          " over the budget ", budget);
    return r;
}

}  // namespace tcomp::model
