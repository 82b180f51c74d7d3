// Few-step samplers for an epsilon-predicting diffusion model, with the noise schedule they share:
//
//   noise_schedule::scaled_linear   betas = linspace(sqrt(beta_start), sqrt(beta_end), T)^2 (Stable Diffusion's
//                                   schedule: T = 1000, 0.00085 .. 0.012), alpha_bar[t] = prod_{s<=t} (1 - beta_s)
//   sampling_timesteps              evenly spaced, "leading" ({751, 501, 251, 1} for 4 of 1000 steps: SD's DDIM
//                                   default) or "trailing" ({999, 749, 499, 249}: starts at pure noise, Lin et al.,
//                                   "Common Diffusion Noise Schedules and Sample Steps are Flawed"). An untrained
//                                   denoiser's error is amplified by 1 / sqrt(alpha_bar(t)) in x0 (14.6 at t = 999,
//                                   4.2 at t = 751), so the seeded pipeline defaults to leading.
//   ddim_sample (eta = 0)           x0 = (x_t - sqrt(1 - a_t) eps) / sqrt(a_t)
//                                   x_prev = sqrt(a_prev) x0 + sqrt(1 - a_prev) eps   (a_prev = 1 after the last step)
//   lcm_sample                      x0 as above; x_prev = sqrt(a_prev) x0 + sqrt(1 - a_prev) z, z fresh seeded noise;
//                                   the last step returns x0. LCM's boundary condition (c_skip = 0.25 / ((10 t)^2 +
//                                   0.25), below 1e-7 for t >= 249 and 0.0025 at t = 1) is left out.
//
// The schedule is computed in double (alpha_bar is a product of 1000 factors); x_t stays float. Seeded noise is
// counter-based (the value of element i depends only on (seed, i)), so it does not depend on threads or batching.
#pragma once

#include <algorithm>
#include <cmath>
#include <cstddef>
#include <cstdint>
#include <functional>
#include <numbers>
#include <span>
#include <vector>

#include "tcomp/core/error.hpp"
#include "tcomp/core/random.hpp"

namespace tcomp::model {
namespace detail {

/// A standard normal value for stream (seed, counter): Box-Muller on two counter-based uniforms.
inline float standard_normal(std::uint64_t seed, std::uint64_t counter) {
    const double u1 = 1.0 - static_cast<double>(tcomp::detail::uniform01(seed, 2 * counter));  // (0, 1]: log is finite
    const double u2 = static_cast<double>(tcomp::detail::uniform01(seed, 2 * counter + 1));
    return static_cast<float>(std::sqrt(-2.0 * std::log(u1)) * std::cos(2.0 * std::numbers::pi * u2));
}

}  // namespace detail

/// n standard normal values, element i from (seed, i).
inline std::vector<float> gaussian_noise(std::uint64_t seed, std::size_t n) {
    std::vector<float> z(n);
    for (std::size_t i = 0; i < n; ++i) z[i] = detail::standard_normal(seed, i);
    return z;
}

class noise_schedule {
public:
    /// Stable Diffusion's "scaled_linear" betas over `train_steps` steps.
    static noise_schedule scaled_linear(int train_steps = 1000, double beta_start = 0.00085, double beta_end = 0.012) {
        if (train_steps < 2)
            tcomp::detail::throw_error<value_error>("noise_schedule::scaled_linear: train_steps = ", train_steps,
                                                    ", need at least 2");
        if (!(beta_start > 0.0 && beta_start <= beta_end && beta_end < 1.0))
            tcomp::detail::throw_error<value_error>(
                "noise_schedule::scaled_linear: need 0 < beta_start <= beta_end < 1, got ", beta_start, " and ",
                beta_end);
        noise_schedule s;
        const double a = std::sqrt(beta_start), b = std::sqrt(beta_end);
        double alpha_bar = 1.0;
        for (int t = 0; t < train_steps; ++t) {
            const double r = a + (b - a) * static_cast<double>(t) / static_cast<double>(train_steps - 1);
            s.betas_.push_back(r * r);
            alpha_bar *= 1.0 - r * r;
            s.alpha_bar_.push_back(alpha_bar);
        }
        return s;
    }

    int train_steps() const { return static_cast<int>(betas_.size()); }
    std::span<const double> betas() const { return betas_; }
    std::span<const double> alphas_cumprod() const { return alpha_bar_; }

    /// alpha_bar[t] for t in [0, T); t = -1 means "after the last step": 1 (diffusers' set_alpha_to_one).
    double alpha_bar(int t) const {
        if (t == -1) return 1.0;
        if (t < -1 || t >= train_steps())
            tcomp::detail::throw_error<value_error>("noise_schedule: timestep ", t, " is outside [-1, ", train_steps(),
                                                    ")");
        return alpha_bar_[static_cast<std::size_t>(t)];
    }

private:
    std::vector<double> betas_, alpha_bar_;
};

/// How the sampler's timesteps are spread over [0, T), both evenly spaced (diffusers' timestep_spacing).
enum class timestep_spacing {
    leading,   ///< (steps - 1 - i) * (T / steps) + 1: {751, 501, 251, 1} (Stable Diffusion's DDIM, steps_offset 1)
    trailing,  ///< round(T - i T / steps) - 1: {999, 749, 499, 249}; starts at pure noise (Lin et al.)
};

/// `steps` decreasing timesteps in [0, T) with the given spacing.
inline std::vector<int> sampling_timesteps(int train_steps, int steps, timestep_spacing spacing) {
    if (steps < 1 || steps > train_steps)
        tcomp::detail::throw_error<value_error>("sampling_timesteps: ", steps, " steps for ", train_steps,
                                                " training steps; need 1 <= steps <= train_steps");
    std::vector<int> t;
    for (int i = 0; i < steps; ++i) {
        if (spacing == timestep_spacing::leading) {
            t.push_back(std::min((steps - 1 - i) * (train_steps / steps) + 1, train_steps - 1));
        } else {
            const double v = static_cast<double>(train_steps) - static_cast<double>(i) * train_steps / steps;
            t.push_back(static_cast<int>(std::lround(v)) - 1);
        }
    }
    return t;
}

/// The denoiser as the samplers see it: eps[i] = prediction for x_t at timestep t (same size as x_t).
using epsilon_model = std::function<void(std::span<const float> x_t, int t, std::span<float> eps)>;

namespace detail {

inline void require_timesteps(const noise_schedule& s, std::span<const int> timesteps, const char* where) {
    if (timesteps.empty()) tcomp::detail::throw_error<value_error>(where, ": no timesteps");
    for (std::size_t i = 0; i < timesteps.size(); ++i) {
        const int t = timesteps[i];
        if (t < 0 || t >= s.train_steps())
            tcomp::detail::throw_error<value_error>(where, ": timestep[", i, "] = ", t, " is outside [0, ",
                                                    s.train_steps(), ")");
        if (i > 0 && t >= timesteps[i - 1])
            tcomp::detail::throw_error<value_error>(where, ": timesteps must decrease; timestep[", i, "] = ", t,
                                                    " follows ", timesteps[i - 1]);
    }
}

/// Runs the model and checks that it wrote finite values (a NaN would otherwise flow silently into the image).
inline void predict(const epsilon_model& model, std::span<const float> x, int t, std::span<float> eps,
                    const char* where) {
    model(x, t, eps);
    for (std::size_t i = 0; i < eps.size(); ++i)
        if (!std::isfinite(eps[i]))
            tcomp::detail::throw_error<value_error>(where, ": the model's epsilon[", i, "] at timestep ", t,
                                                    " is not finite (", eps[i], ")");
}

}  // namespace detail

/// x0 = (x_t - sqrt(1 - a_t) eps) / sqrt(a_t), element-wise, into x0.
inline void predict_x0(std::span<const float> x_t, std::span<const float> eps, double alpha_bar_t,
                       std::span<float> x0) {
    if (x_t.size() != eps.size() || x0.size() != x_t.size())
        tcomp::detail::throw_error<shape_error>("predict_x0: x_t, eps and x0 have ", x_t.size(), ", ", eps.size(),
                                                " and ", x0.size(), " elements");
    const double sa = std::sqrt(alpha_bar_t), sb = std::sqrt(1.0 - alpha_bar_t);
    for (std::size_t i = 0; i < x_t.size(); ++i)
        x0[i] = static_cast<float>((static_cast<double>(x_t[i]) - sb * eps[i]) / sa);
}

/// One deterministic DDIM step (eta = 0) from timestep t to t_prev (-1: the end), in place on x.
inline void ddim_step(const noise_schedule& s, std::span<float> x, std::span<const float> eps, int t, int t_prev) {
    if (x.size() != eps.size())
        tcomp::detail::throw_error<shape_error>("ddim_step: x has ", x.size(), " elements, eps ", eps.size());
    const double a = s.alpha_bar(t), ap = s.alpha_bar(t_prev);
    const double sa = std::sqrt(a), sb = std::sqrt(1.0 - a), sap = std::sqrt(ap), sbp = std::sqrt(1.0 - ap);
    for (std::size_t i = 0; i < x.size(); ++i) {
        const double e = eps[i];
        const double x0 = (static_cast<double>(x[i]) - sb * e) / sa;
        x[i] = static_cast<float>(sap * x0 + sbp * e);
    }
}

/// DDIM (eta = 0) from x_T over `timesteps` (decreasing); returns the final x0 estimate.
inline std::vector<float> ddim_sample(const noise_schedule& s, std::span<const int> timesteps, std::vector<float> x,
                                      const epsilon_model& model) {
    detail::require_timesteps(s, timesteps, "ddim_sample");
    std::vector<float> eps(x.size());
    for (std::size_t i = 0; i < timesteps.size(); ++i) {
        const int t = timesteps[i], t_prev = i + 1 < timesteps.size() ? timesteps[i + 1] : -1;
        detail::predict(model, x, t, eps, "ddim_sample");
        ddim_step(s, x, eps, t, t_prev);
    }
    return x;
}

/// LCM-style multi-step consistency sampling: predict x0 at each timestep, re-noise it to the next one with
/// seeded noise (stream noise_seed, offset by step * x.size()); the last step returns x0.
inline std::vector<float> lcm_sample(const noise_schedule& s, std::span<const int> timesteps, std::vector<float> x,
                                     const epsilon_model& model, std::uint64_t noise_seed) {
    detail::require_timesteps(s, timesteps, "lcm_sample");
    std::vector<float> eps(x.size()), x0(x.size());
    for (std::size_t i = 0; i < timesteps.size(); ++i) {
        const int t = timesteps[i];
        detail::predict(model, x, t, eps, "lcm_sample");
        predict_x0(x, eps, s.alpha_bar(t), x0);
        if (i + 1 == timesteps.size()) return x0;
        const double ap = s.alpha_bar(timesteps[i + 1]), sap = std::sqrt(ap), sbp = std::sqrt(1.0 - ap);
        const std::uint64_t offset = static_cast<std::uint64_t>(i) * x.size();
        for (std::size_t j = 0; j < x.size(); ++j)
            x[j] = static_cast<float>(sap * x0[j] + sbp * detail::standard_normal(noise_seed, offset + j));
    }
    return x0;  // not reached: timesteps is not empty
}

}  // namespace tcomp::model
