// Evaluation of a text-to-image recipe on the digit model (../shared/models/t2i_mnist), the two metrics MixDQ
// decouples:
//   quality   PSNR and SSIM of the generated images against the FP32 model's images from the same prompts and
//             noise (pixels mapped from the model's range to [0, 1], clamped: what would be displayed); PSNR from
//             the mean squared error over the whole set, SSIM the mean over images;
//   content   prompt adherence: the share of images the MNIST MLP (../shared/models/mnist_mlp) classifies as the
//             prompted digit, on the MNIST form of the image (the centre crop inside the padding, as bytes / 255).
// The prompt sets are fixed: evaluation = "a handwritten <word>" and "the digit <numeral>" for the ten digits
// (20 prompts) x seeds 1000.. (the model card's 200 images with 10 seeds); calibration = other templates and
// seeds 0.., so no prompt and no seed is shared with the evaluation.
#pragma once

#include <algorithm>
#include <cmath>
#include <cstdint>
#include <span>
#include <string>
#include <vector>

#include "tcomp/core/error.hpp"
#include "tcomp/metrics/image.hpp"
#include "tcomp/metrics/signal.hpp"
#include "tcomp/model/diffusion_pipeline.hpp"
#include "tcomp/model/mlp_classifier.hpp"

namespace tcomp::model {

/// Prompts with the digit each asks for, each generated with every seed: one generate() call per seed with all
/// prompts as its batch (image b of a call takes noise elements [b C H W, (b + 1) C H W) of its seed's stream).
struct t2i_prompt_set {
    std::vector<std::string> prompts;
    std::vector<int> digits;  // the digit prompt i asks for
    std::vector<std::uint64_t> seeds;

    index_t images() const { return static_cast<index_t>(prompts.size() * seeds.size()); }
};

namespace detail {
inline constexpr const char* digit_words[10] = {"zero", "one", "two",   "three", "four",
                                                "five", "six", "seven", "eight", "nine"};

inline t2i_prompt_set digit_prompts(std::initializer_list<const char*> word_templates,
                                    std::initializer_list<const char*> numeral_templates, std::uint64_t first_seed,
                                    int seeds) {
    if (seeds < 1) tcomp::detail::throw_error<value_error>("t2i prompt set: seeds = ", seeds, ", need >= 1");
    t2i_prompt_set s;
    for (const char* t : word_templates)
        for (int d = 0; d < 10; ++d) s.prompts.push_back(std::string(t) + digit_words[d]), s.digits.push_back(d);
    for (const char* t : numeral_templates)
        for (int d = 0; d < 10; ++d) s.prompts.push_back(std::string(t) + std::to_string(d)), s.digits.push_back(d);
    for (int i = 0; i < seeds; ++i) s.seeds.push_back(first_seed + static_cast<std::uint64_t>(i));
    return s;
}
}  // namespace detail

/// The evaluation prompts: "a handwritten <word>", "the digit <numeral>" (20), seeds 1000 .. 1000 + seeds - 1.
inline t2i_prompt_set t2i_evaluation_prompts(int seeds = 10) {
    return detail::digit_prompts({"a handwritten "}, {"the digit "}, 1000, seeds);
}

/// The calibration prompts, disjoint from the evaluation's in templates and seeds: "a picture of a <word>",
/// "a bold <word>", "number <numeral>", "an image of the numeral <numeral>" (40), seeds 0 .. seeds - 1.
inline t2i_prompt_set t2i_calibration_prompts(int seeds = 1) {
    return detail::digit_prompts({"a picture of a ", "a bold "}, {"number ", "an image of the numeral "}, 0, seeds);
}

/// Generated images: count x channels x height x width, in the order seed-major, then prompt.
struct t2i_images {
    index_t count = 0, channels = 0, height = 0, width = 0;
    std::vector<float> pixels;
    std::vector<int> digits;  // the digit each image was prompted with
};

/// Every prompt of `set` with every seed.
inline t2i_images generate_images(const diffusion_pipeline& pipe, const t2i_prompt_set& set, int threads = 1) {
    if (set.prompts.empty() || set.prompts.size() != set.digits.size() || set.seeds.empty())
        tcomp::detail::throw_error<value_error>("generate_images: ", set.prompts.size(), " prompts, ",
                                                set.digits.size(), " digits and ", set.seeds.size(),
                                                " seeds (need as many digits as prompts, and a seed)");
    t2i_images out;
    const text_embeddings text = pipe.text().encode(set.prompts, threads);
    for (std::uint64_t seed : set.seeds) {
        latent_tensor x = pipe.sample(text, seed, threads);
        out.channels = x.channels, out.height = x.height, out.width = x.width;
        out.pixels.insert(out.pixels.end(), x.data.begin(), x.data.end());
        out.digits.insert(out.digits.end(), set.digits.begin(), set.digits.end());
        out.count += x.batch;
    }
    return out;
}

/// Where the digit sits in an image and how its values map to pixels: [lo, hi] -> [0, 1], `pad` pixels of
/// border around the classifier's input (t2i_mnist: [-1, 1], pad 2, 32 x 32 around MNIST's 28 x 28).
struct t2i_image_format {
    float lo = -1.0f, hi = 1.0f;
    index_t pad = 2;
};

/// The images as the MNIST MLP reads them: one channel, the centre (height - 2 pad) x (width - 2 pad) crop,
/// each pixel round(255 (clamp(x, lo, hi) - lo) / (hi - lo)) / 255, as an 8-bit image would hold it.
inline std::vector<float> classifier_inputs(const t2i_images& im, const t2i_image_format& f) {
    const index_t h = im.height - 2 * f.pad, w = im.width - 2 * f.pad;
    if (im.channels != 1 || h < 1 || w < 1 || !(f.lo < f.hi) ||
        im.pixels.size() != static_cast<std::size_t>(im.count * im.height * im.width))
        tcomp::detail::throw_error<shape_error>("classifier_inputs: ", im.count, " images of ", im.channels, " x ",
                                                im.height, " x ", im.width, " (", im.pixels.size(),
                                                " values) with padding ", f.pad, " do not give one-channel crops");
    std::vector<float> out(static_cast<std::size_t>(im.count * h * w));
    for (index_t i = 0; i < im.count; ++i)
        for (index_t y = 0; y < h; ++y)
            for (index_t x = 0; x < w; ++x) {
                const float v = im.pixels[static_cast<std::size_t>((i * im.height + y + f.pad) * im.width + x + f.pad)];
                const double u = (std::clamp(v, f.lo, f.hi) - f.lo) / (static_cast<double>(f.hi) - f.lo);
                out[static_cast<std::size_t>((i * h + y) * w + x)] = static_cast<float>(std::round(255.0 * u) / 255.0);
            }
    return out;
}

/// The digit the classifier sees in each image.
inline std::vector<int> classify_images(const t2i_images& im, const mlp_classifier& judge, const t2i_image_format& f) {
    const std::vector<float> x = classifier_inputs(im, f);
    return judge.predict(matrix_view<const float>(x.data(), im.count, static_cast<index_t>(x.size()) / im.count));
}

struct t2i_scores {
    index_t images = 0;
    double adherence = 0.0;  // share classified as the prompted digit
    double psnr_db = 0.0;    // against the reference images (+inf when identical); NaN without a reference
    double ssim = 0.0;       // mean over images; NaN without a reference
};

/// Prompt adherence of `test`, and its PSNR / SSIM against `reference` (the FP32 model's images from the same
/// prompt set) when given.
inline t2i_scores score_images(const t2i_images& test, const mlp_classifier& judge, const t2i_image_format& f,
                               const t2i_images* reference = nullptr) {
    t2i_scores s;
    s.images = test.count;
    const std::vector<int> predicted = classify_images(test, judge, f);
    index_t hits = 0;
    for (std::size_t i = 0; i < predicted.size(); ++i) hits += predicted[i] == test.digits[i] ? 1 : 0;
    s.adherence = test.count > 0 ? static_cast<double>(hits) / static_cast<double>(test.count) : 0.0;
    s.psnr_db = s.ssim = std::nan("");
    if (reference) {
        if (reference->count != test.count || reference->pixels.size() != test.pixels.size() ||
            reference->digits != test.digits)
            tcomp::detail::throw_error<shape_error>("score_images: the reference holds ", reference->count,
                                                    " images, the test ", test.count,
                                                    " (they must come from the same prompt set)");
        auto unit = [&](const std::vector<float>& v) {
            std::vector<float> u(v.size());
            for (std::size_t i = 0; i < v.size(); ++i) u[i] = (std::clamp(v[i], f.lo, f.hi) - f.lo) / (f.hi - f.lo);
            return u;
        };
        const std::vector<float> a = unit(reference->pixels), b = unit(test.pixels);
        s.psnr_db = metrics::psnr_db(a, b, 1.0);
        s.ssim = metrics::ssim(a, b, test.count * test.channels, test.height, test.width, 1.0);
    }
    return s;
}

}  // namespace tcomp::model
