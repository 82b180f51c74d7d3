// tcomp-calibrate and tcomp-eval (tools/model_tools.hpp).
//
// tcomp-calibrate MODEL --data FILE -o STATS [--rows A:B] [--no-hessian] [--sample N]
//   Runs calibration data through the FP32 model and writes every linear layer's input statistics
//   (calib/statistics.hpp; io/statistics_file.hpp) for tcomp-quantize --stats.
//     MODEL a LLaMA directory (config.json): FILE holds "tokens" (I32) and "offsets" (I64), one story per range;
//           --rows A:B takes stories A..B-1 (default all).
//     MODEL an MLP checkpoint (.safetensors with fc1.weight, ...): FILE holds "images" (U8, N x 28 x 28, scaled
//           by 1/255); --rows A:B takes images A..B-1.
// tcomp-eval MODEL [--compressed FILE] --data FILE [--rows A:B]
//   Evaluates the compressed model FILE (default: MODEL itself in FP32) against MODEL in FP32 on the data:
//     LLaMA: perplexity of both, their ratio, mean KL(FP32 || Q) per token and top-1 agreement;
//     MLP:   accuracy of both on the labelled images ("labels", U8).
// TAEF2 and the DiT pipeline are not reached by these commands yet (their statistics are gathered in tests);
// naming such a model is an error that says so.
// Exit status: 0 on success, 2 on bad arguments, 1 on any other error (the message names what and where).
#include "model_tools.hpp"

#include <cstdint>
#include <cstdio>
#include <cstring>
#include <exception>
#include <filesystem>
#include <functional>
#include <map>
#include <optional>
#include <stdexcept>
#include <span>
#include <string>
#include <string_view>
#include <vector>

#include "tcomp/calib/statistics.hpp"
#include "tcomp/io/compressed_model.hpp"
#include "tcomp/io/safetensors.hpp"
#include "tcomp/io/statistics_file.hpp"
#include "tcomp/metrics/classification.hpp"
#include "tcomp/metrics/distribution.hpp"
#include "tcomp/model/collect_statistics.hpp"
#include "tcomp/model/llama_loader.hpp"
#include "tcomp/model/mlp_classifier.hpp"

namespace tcomp::tools::model_cli {

namespace fs = std::filesystem;

struct arguments {
    std::vector<std::string> positional;
    std::map<std::string, std::string> options;  // "--data" -> value; flags -> ""
};

/// Options that take a value, and flags; anything else is a usage error.
std::optional<arguments> parse_arguments(int argc, char** argv, std::span<const std::string_view> with_value,
                                         std::span<const std::string_view> flags, std::string& error) {
    arguments out;
    for (int i = 1; i < argc; ++i) {
        const std::string_view a = argv[i];
        bool known = false;
        for (std::string_view o : with_value)
            if (a == o) {
                if (i + 1 >= argc) {
                    error = std::string(a) + " needs a value";
                    return std::nullopt;
                }
                if (out.options.count(std::string(a))) {
                    error = std::string(a) + " given twice";
                    return std::nullopt;
                }
                out.options[std::string(a)] = argv[++i];
                known = true;
            }
        for (std::string_view f : flags)
            if (a == f) out.options[std::string(a)] = "", known = true;
        if (known) continue;
        if (a.starts_with("-")) {
            error = "unknown option " + std::string(a);
            return std::nullopt;
        }
        out.positional.emplace_back(a);
    }
    return out;
}

/// "A:B" -> [A, B) within [0, n); "" -> [0, n).
std::pair<std::int64_t, std::int64_t> parse_rows(const std::string& text, std::int64_t n, const char* what) {
    if (text.empty()) return {0, n};
    const auto colon = text.find(':');
    std::int64_t a = 0, b = 0;
    try {
        if (colon == std::string::npos) throw std::invalid_argument("no colon");
        std::size_t used = 0;
        a = std::stoll(text.substr(0, colon), &used);
        if (used != colon) throw std::invalid_argument("junk");
        b = std::stoll(text.substr(colon + 1), &used);
        if (used != text.size() - colon - 1) throw std::invalid_argument("junk");
    } catch (const std::exception&) {
        tcomp::detail::throw_error<error>("--rows \"", text, "\": expected A:B (", what, " A to B-1)");
    }
    if (a < 0 || b > n || a >= b)
        tcomp::detail::throw_error<error>("--rows ", a, ":", b, ": the data has ", n, " ", what, " (need 0 <= A < B <= ", n, ")");
    return {a, b};
}

bool is_llama_dir(const fs::path& p) { return fs::is_directory(p) && fs::exists(p / "config.json"); }

/// The MLP checkpoint a path names (a .safetensors file with fc1.weight), else nullopt.
bool is_mlp_file(const fs::path& p) {
    if (!fs::is_regular_file(p)) return false;
    const io::compressed_model_file f = io::compressed_model_file::open(p);
    return f.contains("fc1.weight");
}

void require_model_kind(const fs::path& model) {
    if (is_llama_dir(model) || is_mlp_file(model)) return;
    tcomp::detail::throw_error<error>(model.string(), " is neither a LLaMA directory (config.json) nor an MLP checkpoint "
                                      "(a .safetensors file with fc1.weight); TAEF2 and the DiT pipeline are not "
                                      "reached by the command-line tools yet");
}

struct token_data {
    std::vector<int> tokens;
    std::vector<std::int64_t> offsets;
    std::int64_t stories() const { return static_cast<std::int64_t>(offsets.size()) - 1; }
    std::span<const int> story(std::int64_t s) const {
        return {tokens.data() + offsets[static_cast<std::size_t>(s)],
                static_cast<std::size_t>(offsets[static_cast<std::size_t>(s) + 1] - offsets[static_cast<std::size_t>(s)])};
    }
};

token_data read_tokens(const fs::path& path, std::int64_t vocab) {
    const io::safetensors_file f = io::safetensors_file::open(path);
    for (const char* name : {"tokens", "offsets"})
        if (!f.contains(name)) tcomp::detail::throw_error<error>(path.string(), ": no tensor \"", name, "\" (a token file has tokens I32 and offsets I64)");
    const io::tensor_view& t = f.tensor("tokens");
    const io::tensor_view& o = f.tensor("offsets");
    if (t.type != io::dtype::i32 || t.shape.size() != 1 || o.type != io::dtype::i64 || o.shape.size() != 1 || o.shape[0] < 2)
        tcomp::detail::throw_error<error>(path.string(), ": tokens must be I32 [T] and offsets I64 [S + 1], S >= 1");
    token_data d;
    d.tokens.resize(static_cast<std::size_t>(t.shape[0]));
    std::memcpy(d.tokens.data(), t.data.data(), d.tokens.size() * sizeof(int));
    d.offsets.resize(static_cast<std::size_t>(o.shape[0]));
    std::memcpy(d.offsets.data(), o.data.data(), d.offsets.size() * sizeof(std::int64_t));
    for (std::size_t i = 0; i + 1 < d.offsets.size(); ++i)
        if (d.offsets[i] < 0 || d.offsets[i + 1] < d.offsets[i] + 2 || d.offsets[i + 1] > t.shape[0])
            tcomp::detail::throw_error<error>(path.string(), ": offsets[", i, "..", i + 1, "] = ", d.offsets[i], "..",
                                              d.offsets[i + 1], " is not a story of at least 2 of the ", t.shape[0], " tokens");
    for (std::size_t i = 0; i < d.tokens.size(); ++i)
        if (d.tokens[i] < 0 || d.tokens[i] >= vocab)
            tcomp::detail::throw_error<error>(path.string(), ": token ", i, " is ", d.tokens[i], ", outside the vocabulary of ", vocab);
    return d;
}

struct image_data {
    std::vector<float> pixels;  // n x 784, in [0, 1]
    std::vector<int> labels;    // empty when the file has none
    std::int64_t first = 0, n = 0;
};

image_data read_images(const fs::path& path, const std::string& rows) {
    const io::safetensors_file f = io::safetensors_file::open(path);
    if (!f.contains("images")) tcomp::detail::throw_error<error>(path.string(), ": no tensor \"images\" (U8, N x 28 x 28)");
    const io::tensor_view& im = f.tensor("images");
    if (im.type != io::dtype::u8 || im.shape.size() != 3 || im.shape[1] != 28 || im.shape[2] != 28)
        tcomp::detail::throw_error<error>(path.string(), ": images must be U8 [N, 28, 28]");
    const auto [a, b] = parse_rows(rows, im.shape[0], "images");
    image_data d;
    d.first = a, d.n = b - a;
    d.pixels.resize(static_cast<std::size_t>(d.n * 784));
    for (std::size_t i = 0; i < d.pixels.size(); ++i)
        d.pixels[i] = static_cast<float>(std::to_integer<int>(im.data[static_cast<std::size_t>(a * 784) + i])) / 255.0f;
    if (f.contains("labels")) {
        const io::tensor_view& l = f.tensor("labels");
        if (l.type != io::dtype::u8 || l.shape != std::vector<std::int64_t>{im.shape[0]})
            tcomp::detail::throw_error<error>(path.string(), ": labels must be U8 [", im.shape[0], "]");
        for (std::int64_t i = a; i < b; ++i) d.labels.push_back(std::to_integer<int>(l.data[static_cast<std::size_t>(i)]));
    }
    return d;
}

/// "file B bytes (FP32 checkpoint A)" for a compressed file, else "".
std::string size_note(const fs::path& fp32, const std::optional<fs::path>& compressed) {
    if (!compressed) return "the FP32 model against itself";
    std::error_code e1, e2;
    const auto a = fs::file_size(fp32, e1), b = fs::file_size(*compressed, e2);
    if (e1 || e2) return "";
    return "file " + std::to_string(b) + " bytes (FP32 checkpoint " + std::to_string(a) + ")";
}

int usage(const char* tool, const char* text, const std::string& why) {
    std::fprintf(stderr, "%s: %s\n%s", tool, why.c_str(), text);
    return 2;
}

constexpr const char* calibrate_usage =
    "usage: tcomp-calibrate MODEL --data FILE -o STATS [--rows A:B] [--no-hessian] [--sample N]\n"
    "  MODEL  a LLaMA directory (FILE: tokens I32 + offsets I64; rows = stories) or an MLP checkpoint\n"
    "         (FILE: images U8 N x 28 x 28; rows = images)\n"
    "  STATS  the statistics file to write (every linear layer's input: sum x^2, absmax, min/max, the Hessian\n"
    "         x^T x unless --no-hessian, a sample of N rows, default 256)\n";

constexpr const char* eval_usage =
    "usage: tcomp-eval MODEL [--compressed FILE] --data DATA [--rows A:B]\n"
    "  MODEL  the FP32 model: a LLaMA directory (DATA: a token file; perplexity, KL and top-1 against FP32) or an\n"
    "         MLP checkpoint (DATA: images + labels; accuracy)\n"
    "  FILE   the compressed model (tcomp-quantize's output); without it MODEL is evaluated against itself\n";

int calibrate(int argc, char** argv) {
    constexpr std::string_view with_value[] = {"--data", "-o", "--rows", "--sample"};
    constexpr std::string_view flags[] = {"--no-hessian"};
    std::string why;
    const std::optional<arguments> args = parse_arguments(argc, argv, with_value, flags, why);
    if (!args) return usage("tcomp-calibrate", calibrate_usage, why);
    if (args->positional.size() != 1) return usage("tcomp-calibrate", calibrate_usage, "expected one MODEL");
    if (!args->options.count("--data")) return usage("tcomp-calibrate", calibrate_usage, "--data is required");
    if (!args->options.count("-o")) return usage("tcomp-calibrate", calibrate_usage, "-o STATS is required");
    try {
        const fs::path model = args->positional[0], data = args->options.at("--data"), out = args->options.at("-o");
        const std::string rows = args->options.count("--rows") ? args->options.at("--rows") : "";
        model::statistics_options so;
        so.hessian = !args->options.count("--no-hessian");
        if (args->options.count("--sample")) {
            const std::string& s = args->options.at("--sample");
            try {
                std::size_t used = 0;
                so.sample_rows = std::stoll(s, &used);
                if (used != s.size() || so.sample_rows < 0) throw std::invalid_argument(s);
            } catch (const std::exception&) {
                return usage("tcomp-calibrate", calibrate_usage, "--sample " + s + ": expected a row count >= 0");
            }
        }
        require_model_kind(model);
        std::map<std::string, std::string> meta{{"model", model.filename().string()}, {"data", data.filename().string()}};
        model::layer_statistics stats;
        if (is_llama_dir(model)) {
            model::llama_model m = model::load_llama(model);
            const token_data d = read_tokens(data, m.config().vocab_size);
            const std::pair<std::int64_t, std::int64_t> range = parse_rows(rows, d.stories(), "stories");
            const std::int64_t a = range.first, b = range.second;  // (not a structured binding: Clang 14 cannot capture those)
            stats = model::collect_input_statistics([&] {
                for (std::int64_t s = a; s < b; ++s) (void)m.forward(d.story(s));
            }, so);
            meta["rows"] = "stories " + std::to_string(a) + ".." + std::to_string(b - 1);
        } else {
            const model::mlp_classifier m = model::mlp_classifier::load(model);
            const image_data d = read_images(data, rows);
            stats = model::collect_input_statistics([&] {
                (void)m.logits(matrix_view<const float>(d.pixels.data(), d.n, 784));
            }, so);
            meta["rows"] = "images " + std::to_string(d.first) + ".." + std::to_string(d.first + d.n - 1);
        }
        io::statistics_map map(stats.begin(), stats.end());
        io::write_statistics(out, map, meta);
        index_t rows_seen = stats.empty() ? 0 : stats.begin()->second.rows();
        std::printf("tcomp-calibrate: %zu layers, %lld rows of the first layer's input (%s) -> %s\n", stats.size(),
                    static_cast<long long>(rows_seen), meta["rows"].c_str(), out.string().c_str());
        return 0;
    } catch (const std::exception& e) {
        std::fprintf(stderr, "tcomp-calibrate: error: %s\n", e.what());
        return 1;
    }
}

int eval(int argc, char** argv) {
    constexpr std::string_view with_value[] = {"--data", "--compressed", "--rows"};
    std::string why;
    const std::optional<arguments> args = parse_arguments(argc, argv, with_value, {}, why);
    if (!args) return usage("tcomp-eval", eval_usage, why);
    if (args->positional.size() != 1) return usage("tcomp-eval", eval_usage, "expected one MODEL");
    if (!args->options.count("--data")) return usage("tcomp-eval", eval_usage, "--data is required");
    try {
        const fs::path model = args->positional[0], data = args->options.at("--data");
        const std::optional<fs::path> compressed =
            args->options.count("--compressed") ? std::optional<fs::path>(args->options.at("--compressed")) : std::nullopt;
        const std::string rows = args->options.count("--rows") ? args->options.at("--rows") : "";
        require_model_kind(model);
        const std::string name = compressed ? compressed->filename().string() : std::string("FP32");
        if (is_llama_dir(model)) {
            model::llama_model ref = model::load_llama(model);
            std::optional<io::compressed_model_file> file;
            if (compressed) file.emplace(io::compressed_model_file::open(*compressed));
            model::llama_model q =
                compressed ? model::load_llama_compressed(model / "config.json", *compressed,
                                                          [&](const std::string& tensor) -> std::string {
                                                              const auto it = file->layers().find(tensor);
                                                              return it == file->layers().end() ? "fp32" : it->second.policy;
                                                          })
                           : model::load_llama(model);
            const token_data d = read_tokens(data, ref.config().vocab_size);
            const auto [a, b] = parse_rows(rows, d.stories(), "stories");
            const index_t v = ref.config().vocab_size;
            metrics::nll_accumulator nll_ref, nll_q;
            double kl = 0.0, top1 = 0.0;
            for (std::int64_t s = a; s < b; ++s) {
                const std::span<const int> story = d.story(s);
                const auto n = static_cast<index_t>(story.size()) - 1;
                const std::vector<float> lr = ref.forward(story), lq = q.forward(story);
                const matrix_view<const float> vr(lr.data(), n, v), vq(lq.data(), n, v);
                nll_ref.add(vr, story.subspan(1));
                nll_q.add(vq, story.subspan(1));
                kl += metrics::mean_kl_divergence(vr, vq) * static_cast<double>(n);
                top1 += metrics::top1_agreement(vr, vq) * static_cast<double>(n);
            }
            const double tokens = static_cast<double>(nll_q.count);
            std::printf("tcomp-eval: %s on stories %lld..%lld (%zu predicted tokens): perplexity %.6f (FP32 %.6f, x%.4f), "
                        "KL(FP32 || Q) %.6f nats/token, top-1 agreement %.4f; %s\n",
                        name.c_str(), static_cast<long long>(a), static_cast<long long>(b - 1), nll_q.count,
                        nll_q.perplexity(), nll_ref.perplexity(), nll_q.perplexity() / nll_ref.perplexity(), kl / tokens,
                        top1 / tokens, size_note(model / "model.safetensors", compressed).c_str());
        } else {
            const image_data d = read_images(data, rows);
            if (d.labels.empty()) tcomp::detail::throw_error<error>(data.string(), ": no tensor \"labels\" to score against");
            const model::mlp_classifier ref = model::mlp_classifier::load(model);
            const model::mlp_classifier q = compressed ? model::mlp_classifier::load(*compressed) : model::mlp_classifier::load(model);
            const matrix_view<const float> x(d.pixels.data(), d.n, 784);
            const double acc_ref = metrics::accuracy(ref.predict(x), d.labels), acc_q = metrics::accuracy(q.predict(x), d.labels);
            std::printf("tcomp-eval: %s on %lld images: accuracy %.2f%% (FP32 %.2f%%); %s\n", name.c_str(),
                        static_cast<long long>(d.n), 100.0 * acc_q, 100.0 * acc_ref, size_note(model, compressed).c_str());
        }
        return 0;
    } catch (const std::exception& e) {
        std::fprintf(stderr, "tcomp-eval: error: %s\n", e.what());
        return 1;
    }
}

}  // namespace tcomp::tools::model_cli

namespace tcomp::tools {
int calibrate_main(int argc, char** argv) { return model_cli::calibrate(argc, argv); }
int eval_main(int argc, char** argv) { return model_cli::eval(argc, argv); }
}  // namespace tcomp::tools
