// When activation scales are chosen.
//   dynamic     from the actual input at every call (per_token needs this)
//   calibrated  once, from calibration batches seen by the observer (static quantization); a matmul with
//               a calibrated activation quantizer that has seen no data is an error, not a guess.
// Weight quantizers ignore this option: weights are always calibrated on themselves.
#pragma once

namespace tcomp {

struct activation_mode_category {};

struct dynamic {
    using option_category = activation_mode_category;
    static constexpr bool is_dynamic = true;
};
struct calibrated {
    using option_category = activation_mode_category;
    static constexpr bool is_dynamic = false;
};

}  // namespace tcomp
