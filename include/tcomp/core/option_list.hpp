// Picks options out of an unordered template parameter pack by category, so a policy reads like a
// sentence (quantizer<int_format<4>, per_group<128>, symmetric>) in any order, with defaults for what is
// left out, and a compile-time error for duplicates or options that do not belong.
#pragma once

#include <type_traits>

namespace tcomp::detail {

template <class Option>
concept has_category = requires { typename Option::option_category; };

template <class Category, class Option>
constexpr bool is_in_category() {
    if constexpr (has_category<Option>) return std::is_same_v<typename Option::option_category, Category>;
    else return false;
}

template <class Category, class... Options>
constexpr int count_in_category = (0 + ... + (is_in_category<Category, Options>() ? 1 : 0));

template <class Category, class Default, class... Options>
struct pick_option {
    using type = Default;
};
template <class Category, class Default, class First, class... Rest>
struct pick_option<Category, Default, First, Rest...> {
    using type = std::conditional_t<is_in_category<Category, First>(), First,
                                    typename pick_option<Category, Default, Rest...>::type>;
};

template <class Category, class Default, class... Options>
using pick_option_t = typename pick_option<Category, Default, Options...>::type;

}  // namespace tcomp::detail
