// Activation taps for calibration: while an input_tap lives on a thread, every model::linear::forward on that
// thread hands its input X (rows x K, before the layer runs) to the tap's observer with the layer's name. Every
// model reaches its weights through model::linear (convolutions through their im2col GEMM, with X the im2col
// rows), so any model can run calibration data unchanged: the forward results are the same with or without
// a tap. Taps nest (the innermost observes); the observer must not keep the view past the call.
//
//   std::map<std::string, calib::input_statistics> stats;
//   {
//       model::input_tap tap([&](const std::string& layer, matrix_view<const float> x) { ... });
//       model.forward(tokens);
//   }
#pragma once

#include <functional>
#include <string>

#include "tcomp/core/matrix_view.hpp"

namespace tcomp::model {

using input_observer = std::function<void(const std::string& layer, matrix_view<const float> x)>;

namespace detail {
inline thread_local const input_observer* current_input_observer = nullptr;
}  // namespace detail

class input_tap {
public:
    explicit input_tap(input_observer observer)
        : observer_(std::move(observer)), previous_(detail::current_input_observer) {
        detail::current_input_observer = &observer_;
    }
    ~input_tap() { detail::current_input_observer = previous_; }
    input_tap(const input_tap&) = delete;
    input_tap& operator=(const input_tap&) = delete;

private:
    input_observer observer_;
    const input_observer* previous_;
};

}  // namespace tcomp::model
