// Bit allocation (model/bit_allocation.hpp): the dynamic program against brute force on random small instances
// (every assignment enumerated), the budget edges, rounding to a coarser unit (never over budget), and the named
// errors for bad input.
#include <catch2/catch.hpp>

#include "test_support.hpp"

#include <cmath>
#include <cstdint>
#include <limits>
#include <random>
#include <string>
#include <vector>

#include "tcomp/model/bit_allocation.hpp"

using namespace tcomp;
using tcomp_test::error_of;

namespace {

/// The best assignment by enumeration: least summed sensitivity with summed cost <= budget.
double brute_force(const std::vector<model::allocation_layer>& layers, std::int64_t budget) {
    double best = std::numeric_limits<double>::infinity();
    std::vector<std::size_t> pick(layers.size(), 0);
    while (true) {
        std::int64_t cost = 0;
        double sens = 0.0;
        for (std::size_t l = 0; l < layers.size(); ++l)
            cost += layers[l].candidates[pick[l]].cost, sens += layers[l].candidates[pick[l]].sensitivity;
        if (cost <= budget) best = std::min(best, sens);
        std::size_t l = 0;
        while (l < layers.size() && ++pick[l] == layers[l].candidates.size()) pick[l++] = 0;
        if (l == layers.size()) return best;
    }
}

/// Weight-bit candidates of a layer of n elements: bits x n, sensitivity falling with the bits (plus noise, so
/// it is not always monotone, as measured sensitivities are not).
model::allocation_layer random_layer(std::mt19937& rng, int index, bool bits_times_elements) {
    model::allocation_layer l;
    l.name = "layer" + std::to_string(index);
    const std::int64_t n = bits_times_elements ? 64 * (1 + static_cast<std::int64_t>(rng() % 16)) : 1;
    std::uniform_real_distribution<double> u(0.0, 1.0);
    const int count = 1 + static_cast<int>(rng() % 4);
    for (int k = 0; k < count; ++k) {
        const int bits = std::array<int, 4>{2, 3, 4, 8}[static_cast<std::size_t>(k)];
        const std::int64_t cost = bits_times_elements ? bits * n : static_cast<std::int64_t>(rng() % 1000);
        l.candidates.push_back({"b" + std::to_string(bits), cost, std::exp(-0.7 * bits) * (1.0 + u(rng)) + 0.01 * u(rng)});
    }
    return l;
}

}  // namespace

TEST_CASE("bit allocation: the dynamic program equals brute force on random instances", "[mixed]") {
    std::mt19937 rng(20261207);
    for (int trial = 0; trial < 300; ++trial) {
        const bool structured = trial % 2 == 0;  // bits x elements (a large gcd) or arbitrary costs (gcd 1)
        std::vector<model::allocation_layer> layers;
        const int n = 1 + static_cast<int>(rng() % 7);
        for (int i = 0; i < n; ++i) layers.push_back(random_layer(rng, i, structured));
        const auto [lo, hi] = model::allocation_cost_range(layers);
        const std::int64_t budget = lo + static_cast<std::int64_t>(rng() % static_cast<std::uint64_t>(hi - lo + 1));
        const model::allocation_result r = model::allocate_bits(layers, budget);
        INFO("trial " << trial << ": " << n << " layers, budget " << budget << " in [" << lo << ", " << hi << "]");
        CHECK(r.exact);
        REQUIRE(r.choice.size() == layers.size());
        std::int64_t cost = 0;
        double sens = 0.0;
        for (std::size_t l = 0; l < layers.size(); ++l) {
            REQUIRE(r.choice[l] < layers[l].candidates.size());
            cost += layers[l].candidates[r.choice[l]].cost, sens += layers[l].candidates[r.choice[l]].sensitivity;
        }
        CHECK(cost == r.cost);
        CHECK(sens == Approx(r.sensitivity));
        CHECK(cost <= budget);
        CHECK(r.sensitivity == Approx(brute_force(layers, budget)).epsilon(1e-12));
    }
}

TEST_CASE("bit allocation: budget edges, a coarse unit stays within budget, 60 layers in well under a second", "[mixed]") {
    std::mt19937 rng(7);
    std::vector<model::allocation_layer> layers;
    for (int i = 0; i < 6; ++i) layers.push_back(random_layer(rng, i, false));
    const auto [lo, hi] = model::allocation_cost_range(layers);
    // The cheapest budget takes each layer's cheapest candidate; the dearest allows the best of each layer.
    CHECK(model::allocate_bits(layers, lo).cost == lo);
    double best_each = 0.0;
    for (const auto& l : layers) {
        double b = std::numeric_limits<double>::infinity();
        for (const auto& c : l.candidates) b = std::min(b, c.sensitivity);
        best_each += b;
    }
    CHECK(model::allocate_bits(layers, hi).sensitivity == Approx(best_each));
    // A table of 16 states: costs rounded up, never over budget, not claimed exact; close to brute force here.
    for (std::int64_t budget = lo; budget <= hi; budget += std::max<std::int64_t>(1, (hi - lo) / 17)) {
        const model::allocation_result r = model::allocate_bits(layers, budget, 16);
        CHECK(r.cost <= budget);
        CHECK(r.sensitivity >= brute_force(layers, budget) - 1e-12);
        if (budget - lo >= 16) CHECK_FALSE(r.exact);
    }
    // A model-sized instance: 60 layers x 6 candidates, bit-element costs (the t2i DiT's scale).
    std::vector<model::allocation_layer> big;
    for (int i = 0; i < 60; ++i) {
        model::allocation_layer l = random_layer(rng, i, true);
        while (l.candidates.size() < 4) l = random_layer(rng, i, true);
        big.push_back(l);
    }
    const auto [blo, bhi] = model::allocation_cost_range(big);
    const model::allocation_result r = model::allocate_bits(big, (blo + bhi) / 2);
    CHECK(r.exact);
    CHECK(r.cost <= (blo + bhi) / 2);
}

TEST_CASE("bit allocation: bad input is a named error", "[mixed]") {
    std::vector<model::allocation_layer> layers{{"a", {{"w8", 8, 0.0}, {"w4", 4, 1.0}}}, {"b", {{"w8", 8, 0.0}}}};
    CHECK_THAT(error_of([&] { model::allocate_bits(layers, 11); }),
               Catch::Contains("budget 11 is below the cheapest assignment (12)") && Catch::Contains("[12, 16]"));
    CHECK_THAT(error_of([&] { model::allocate_bits(layers, 17); }),
               Catch::Contains("above the dearest assignment (16)"));
    CHECK(model::allocate_bits(layers, 12).choice == std::vector<std::size_t>{1, 0});
    CHECK(model::allocate_bits(layers, 16).choice == std::vector<std::size_t>{0, 0});
    CHECK_THAT(error_of([&] { model::allocate_bits({}, 0); }), Catch::Contains("no layers"));
    auto bad = layers;
    bad[1].candidates.clear();
    CHECK_THAT(error_of([&] { model::allocate_bits(bad, 12); }), Catch::Contains("layer b has no candidates"));
    bad = layers;
    bad[0].candidates[1].cost = -1;
    CHECK_THAT(error_of([&] { model::allocate_bits(bad, 12); }), Catch::Contains("layer a, candidate w4: negative cost"));
    bad = layers;
    bad[0].candidates[0].sensitivity = std::nan("");
    CHECK_THAT(error_of([&] { model::allocate_bits(bad, 12); }), Catch::Contains("sensitivity is not finite"));
}
