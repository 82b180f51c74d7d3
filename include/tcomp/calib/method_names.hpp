// The calibration methods' names: one table row per method, with its stable name (recipes and command lines use
// it: the names will not change) and what it needs of the statistics. calib/methods.hpp applies them.
#pragma once

#include <array>
#include <string>
#include <string_view>

#include "tcomp/core/error.hpp"

namespace tcomp::calib {

enum class method { rtn, imatrix, gptq, awq, awq_gptq, smoothquant, sparsegpt, wanda };

struct method_info {
    method id;
    std::string_view name;  // stable: recipes and command lines use it
    bool needs_statistics;  // false only for rtn (which still uses them for static activation scales)
    bool needs_hessian;
    bool needs_sample;
    std::string_view summary;
};

inline constexpr std::array<method_info, 8> method_table{{
    {method::rtn, "rtn", false, false, false, "round to nearest"},
    {method::imatrix, "imatrix", true, false, false, "importance-weighted scale search (mean x^2)"},
    {method::gptq, "gptq", true, true, false, "GPTQ, act-order on importance-searched static scales"},
    {method::awq, "awq", true, false, false, "AWQ: activation-aware smoothing, then clip search"},
    {method::awq_gptq, "awq+gptq", true, true, false, "AWQ smoothing, then GPTQ on the smoothed problem"},
    {method::smoothquant, "smoothquant", true, false, true, "SmoothQuant: migration searched with activation quantization"},
    {method::sparsegpt, "sparsegpt", true, true, false, "SparseGPT N:M masks with weight update"},
    {method::wanda, "wanda", true, false, false, "Wanda N:M masks (|W| x ||X||)"},
}};

inline const method_info& info(method m) {
    for (const method_info& i : method_table)
        if (i.id == m) return i;
    tcomp::detail::throw_error<error>("calib::info: unknown method");
}

/// "rtn|imatrix|gptq|..." for messages.
inline std::string method_names() {
    std::string out;
    for (const method_info& i : method_table) {  // appends (operator+ here trips GCC 12's -Wrestrict false positive)
        if (!out.empty()) out += '|';
        out += i.name;
    }
    return out;
}

/// The method named `name`; error listing the names otherwise.
inline method parse_method(std::string_view name) {
    for (const method_info& i : method_table)
        if (i.name == name) return i.id;
    tcomp::detail::throw_error<error>("unknown calibration method \"", name, "\"; known: ", method_names());
}

}  // namespace tcomp::calib
