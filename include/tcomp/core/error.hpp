// The one exception type of the library. Every run-time failure (shape, value, file) throws tcomp::error
// with a message that names *what* failed and *where* (function, tensor, index), so the caller can act
// on it without a debugger. Derived types let callers catch one class of failure.
#pragma once

#include <sstream>
#include <stdexcept>
#include <string>
#include <utility>

namespace tcomp {

class error : public std::runtime_error {
public:
    explicit error(const std::string& message) : std::runtime_error(message) {}
};

/// Operand shapes that do not fit together, or a shape a policy cannot represent.
class shape_error : public error {
public:
    using error::error;
};

/// Input values a policy refuses: NaN/Inf, negative counts, an uncalibrated static quantizer, ...
class value_error : public error {
public:
    using error::error;
};

namespace detail {

/// Builds a message from streamable parts: throw_error<shape_error>("matmul: x has ", k, " columns").
template <class Error = error, class... Parts>
[[noreturn]] void throw_error(Parts&&... parts) {
    std::ostringstream out;
    (out << ... << std::forward<Parts>(parts));
    throw Error(out.str());
}

}  // namespace detail
}  // namespace tcomp
