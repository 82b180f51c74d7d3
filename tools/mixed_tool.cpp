// tcomp-mixed T2I_DIR --budget B -o RECIPE [--a16] [--candidates 8:channel,4:g32,...] [--steps N] [--seeds N] [--prompts N]
//             [--table OUT.json | --from-table IN.json] [--shares 0.3,0.5,0.7] [--stats S --method M]
//   A mixed-precision recipe for the text-to-image model (model/t2i_mixed_precision.hpp): every linear layer
//   quantized alone to each weight width, on the calibration prompts (disjoint from tcomp-eval's) with a short
//   sampler; content and quality layers scored by their own metric and normalised per group; the integer program
//   (model/bit_allocation.hpp) per group under B average stored bits per weight ("4.5" or "4.5bits"), for each content
//   share; the share whose recipe scores best on the calibration prompts wins. The recipe (JSON, model/recipe.hpp)
//   names every layer's policy; tcomp-eval and the demo take it. --table writes the sensitivity table,
//   --from-table reads one instead of measuring (it must list the model's layers, else an error names the row).
//   --method M builds every candidate with a calibration method on tcomp-calibrate's statistics S (GPTQ's 4-bit
//   layers are not RTN's: the sensitivities, the allocation and the recipe's "method" all follow M).
// tcomp-mixed TAEF2_DIR --data LATENTS [--rows A:B] --budget B -o RECIPE [...]
//   The TAEF2 decoder (model/taef2_mixed_precision.hpp): every conv alone at each candidate, the latents decoded,
//   10^(-SQNR/10) against FP32's decode; one knapsack over the convs. tcomp-eval TAEF2_DIR takes the recipe.
// Exit status: 0 on success, 2 on bad arguments, 1 on any other error.
#include "model_tools.hpp"

#include <chrono>
#include <cmath>
#include <cstdio>
#include <exception>
#include <filesystem>
#include <fstream>
#include <map>
#include <optional>
#include <string>
#include <string_view>
#include <vector>

#include <nlohmann/json.hpp>

#include "tcomp/io/small_file.hpp"
#include "tcomp/calib/method_names.hpp"
#include "tcomp/io/statistics_file.hpp"
#include "tcomp/model/diffusion_checkpoint.hpp"
#include "tcomp/model/layer_methods.hpp"
#include "tcomp/model/taef2_mixed_precision.hpp"
#include "tcomp/model/t2i_mixed_precision.hpp"

namespace tcomp::tools::mixed_cli {

namespace fs = std::filesystem;

constexpr const char* usage_text =
    "usage: tcomp-mixed T2I_DIR --budget B -o RECIPE [--a16] [--candidates 8:channel,4:g32,...] [--steps N] [--seeds N] [--prompts N]\n"
    "       tcomp-mixed TAEF2_DIR --data LATENTS [--rows A:B] --budget B -o RECIPE [--a16] [--candidates ...] [--table ...]\n"
    "                   [--table OUT.json | --from-table IN.json] [--shares 0.3,0.4,0.5,0.6,0.7] [--stats S --method M]\n"
    "  B       average stored bits per weight of the linear layers (codes, scales, zero points), e.g. 4.5 or\n"
    "          4.5bits: 16 / B is the weights' size against FP16\n"
    "  --candidates  integer formats <bits>:<channel | g<size>> tried per layer (default\n"
    "          8:channel,4:channel,4:g32,3:g32,2:g32; a group that does not divide K becomes per channel)\n"
    "  --a16   float activations (default: INT8 per token, W?A8)\n"
    "  calibration: the first N (default all 40) calibration prompts x seeds (default 1), DDIM with N steps (4)\n"
    "  --method M  every candidate compressed by calibration method M (gptq, awq+gptq, ...) on the statistics S of\n"
    "          tcomp-calibrate T2I_DIR (default rtn); the recipe names M, so tcomp-eval --stats S reproduces it\n";

int usage(const std::string& why) {
    std::fprintf(stderr, "tcomp-mixed: %s\n%s", why.c_str(), usage_text);
    return 2;
}

/// "a,b,c" -> numbers; nullopt when one is not a number.
std::optional<std::vector<double>> number_list(const std::string& text) {
    std::vector<double> out;
    std::size_t a = 0;
    while (a <= text.size()) {
        const std::size_t b = std::min(text.find(',', a), text.size());
        const std::string item = text.substr(a, b - a);
        std::size_t used = 0;
        try {
            out.push_back(std::stod(item, &used));
        } catch (const std::exception&) {
            return std::nullopt;
        }
        if (used != item.size() || !std::isfinite(out.back())) return std::nullopt;
        a = b + 1;
    }
    return out;
}

/// The sensitivity table as tcomp-sensitivity-v1 JSON: `settings` (the metric and what was measured on), the
/// method, the activations and one row per layer.
nlohmann::json table_json(const std::vector<model::layer_sensitivity>& table, nlohmann::json settings, bool a8,
                          const std::string& method) {
    nlohmann::json rows = nlohmann::json::array();
    for (const auto& L : table)
        rows.push_back({{"layer", L.layer}, {"group", model::to_string(L.group)}, {"out", L.out}, {"in", L.in},
                        {"policies", L.policies}, {"bits", L.bits}, {"raw", L.raw}, {"sensitivity", L.sensitivity}});
    settings["format"] = "tcomp-sensitivity-v1";
    settings["method"] = method;
    settings["activations"] = a8 ? "int8:token" : "float";
    settings["layers"] = rows;
    return settings;
}

/// Writes the allocation as a recipe (every layer named; "method" unless rtn) and returns "n x policy, ..." for
/// the summary line.
std::string write_recipe(const std::vector<model::layer_sensitivity>& table,
                         const std::map<std::string, std::string>& policies, const std::string& description,
                         const std::string& method, const std::string& path) {
    nlohmann::json layers = nlohmann::json::array();
    std::map<std::string, int> histogram;
    for (const auto& L : table) {
        const std::string& p = policies.at(L.layer);
        layers.push_back({{"match", L.layer}, {"policy", p}});
        ++histogram[p];
    }
    nlohmann::json recipe = {{"description", description}, {"default", "fp32"}, {"layers", layers}};
    if (method != "rtn") recipe["method"] = method;
    std::ofstream(path) << recipe.dump(1) << "\n";
    std::string widths;
    for (const auto& [p, n] : histogram) widths += (widths.empty() ? "" : ", ") + std::to_string(n) + " x " + p;
    return widths;
}

std::vector<model::layer_sensitivity> table_from_json(const fs::path& path, const std::string& method) {
    const std::string text = tcomp::detail::read_small_file(path, std::uint64_t{64} << 20, "sensitivity table");
    nlohmann::json j;
    try {
        j = nlohmann::json::parse(text);
    } catch (const nlohmann::json::exception& e) {
        tcomp::detail::throw_error<error>(path.string(), ": not valid JSON (", e.what(), ")");
    }
    if (!j.is_object() || j.value("format", std::string{}) != "tcomp-sensitivity-v1" || !j.contains("layers") ||
        !j["layers"].is_array())
        tcomp::detail::throw_error<error>(path.string(), ": not a tcomp-sensitivity-v1 table (\"format\", \"layers\")");
    // A table measured with other candidates' weights would allocate for layers that are not the ones built.
    if (const std::string m = j.value("method", std::string("rtn")); m != method)
        tcomp::detail::throw_error<error>(path.string(), ": the table was measured with method ", m, ", not ", method,
                                          " (give --method ", m, ")");
    std::vector<model::layer_sensitivity> out;
    std::size_t i = 0;
    for (const auto& r : j["layers"]) {
        try {
            model::layer_sensitivity L;
            L.layer = r.at("layer").get<std::string>();
            L.group = r.at("group").get<std::string>() == "content" ? model::sensitivity_group::content
                                                                     : model::sensitivity_group::quality;
            L.out = r.at("out").get<index_t>(), L.in = r.at("in").get<index_t>();
            L.policies = r.at("policies").get<std::vector<std::string>>();
            L.bits = r.at("bits").get<std::vector<std::int64_t>>();
            L.raw = r.at("raw").get<std::vector<double>>();
            L.sensitivity = r.at("sensitivity").get<std::vector<double>>();
            if (L.policies.empty() || L.bits.size() != L.policies.size() || L.sensitivity.size() != L.policies.size() ||
                L.raw.size() != L.policies.size())
                throw std::runtime_error("policies, bits, raw and sensitivity must be non-empty and of one length");
            out.push_back(std::move(L));
        } catch (const std::exception& e) {
            tcomp::detail::throw_error<error>(path.string(), ": layer row ", i, ": ", e.what());
        }
        ++i;
    }
    return out;
}

/// tcomp-mixed TAEF2_DIR --data LATENTS [--rows A:B]: one group (the decoded image's NSR), one knapsack.
int run_taef2(const fs::path& dir, const std::map<std::string, std::string>& opt, double budget,
              const model::t2i_sensitivity_options& common, const model::recipe& method_recipe,
              const io::statistics_map& stats, const std::string& stats_path) {
    for (const char* k : {"--steps", "--seeds", "--prompts", "--shares"})
        if (opt.count(k)) return usage(std::string(k) + " does not apply to the TAEF2 decoder");
    if (!opt.count("--data")) return usage("--data LATENTS (its calibration latents) is required for the TAEF2 decoder");
    const model::taef2_config config = model::taef2_config::from_file(dir / "config.json");
    const model::taef2_weights weights = model::taef2_decoder::read_weights(dir / "model.safetensors");
    const model::taef2_decoder fp32(config, weights);
    const model_cli::latent_data d =
        model_cli::read_latents(opt.at("--data"), opt.count("--rows") ? opt.at("--rows") : "", config.latent_channels);
    const std::string& method = *method_recipe.default_method;
    model::taef2_sensitivity_options o;
    o.candidates = common.candidates, o.a8 = common.a8;
    if (method != "rtn")
        o.builder = [&](const model::taef2_policy_map& m) {
            return model::method_conv_builder(method_recipe, m, "fp32", stats, stats_path);
        };
    const auto t0 = std::chrono::steady_clock::now();
    std::vector<model::layer_sensitivity> table;
    if (opt.count("--from-table")) {
        table = table_from_json(opt.at("--from-table"), method);
    } else {
        std::size_t done = 0;
        const std::size_t total = fp32.convs().size();
        o.progress = [&](const std::string& layer) {
            std::fprintf(stderr, "\r  sensitivity %zu/%zu %-24s", ++done, total, layer.c_str());
        };
        table = model::measure_taef2_sensitivity(config, weights, {d.values, d.n, d.h, d.w}, o);
        std::fprintf(stderr, "\n");
        std::printf("tcomp-mixed: sensitivity of %zu convs x %zu candidates in %.1f s (%lld calibration latents)\n",
                    table.size(), o.candidates.size(),
                    std::chrono::duration<double>(std::chrono::steady_clock::now() - t0).count(), static_cast<long long>(d.n));
        if (opt.count("--table")) {
            const nlohmann::json settings = {
                {"metric", "10^(-SQNR/10) of the decoded images against FP32's, normalised by the mean"},
                {"latents", d.n}};
            std::ofstream(opt.at("--table")) << table_json(table, settings, o.a8, method).dump(1) << "\n";
            std::printf("tcomp-mixed: wrote the sensitivity table %s\n", opt.at("--table").c_str());
        }
    }
    const auto t1 = std::chrono::steady_clock::now();
    const model::taef2_allocation a = model::allocate_taef2(table, fp32, budget);
    const double alloc_s = std::chrono::duration<double>(std::chrono::steady_clock::now() - t1).count();
    char desc[400];
    std::snprintf(desc, sizeof desc,
                  "tcomp-mixed: %s at %.3f stored bits per weight (budget %g), %s activations, method %s; summed "
                  "sensitivity %.4f; %s allocation",
                  dir.filename().string().c_str(), a.average_bits, budget, o.a8 ? "INT8" : "float", method.c_str(),
                  a.sensitivity, a.exact ? "exact" : "rounded");
    const std::string widths = write_recipe(table, a.policies, desc, method, opt.at("-o"));
    std::printf("tcomp-mixed: %.3f stored bits per weight (budget %g): %s; allocation %.2f s -> %s\n", a.average_bits,
                budget, widths.c_str(), alloc_s, opt.at("-o").c_str());
    return 0;
}

int run(int argc, char** argv) {
    std::vector<std::string> positional;
    std::map<std::string, std::string> opt;
    for (int i = 1; i < argc; ++i) {
        const std::string a = argv[i];
        if (a == "--a16") {
            opt[a] = "";
        } else if (a == "--budget" || a == "-o" || a == "--candidates" || a == "--steps" || a == "--seeds" || a == "--prompts" ||
                   a == "--table" || a == "--from-table" || a == "--shares" || a == "--stats" || a == "--method" ||
                   a == "--data" || a == "--rows") {
            if (i + 1 >= argc) return usage(a + " needs a value");
            opt[a] = argv[++i];
        } else if (a.starts_with("-")) {
            return usage("unknown option " + a);
        } else {
            positional.push_back(a);
        }
    }
    if (positional.size() != 1) return usage("expected one T2I_DIR");
    if (!opt.count("--budget")) return usage("--budget is required");
    if (!opt.count("-o")) return usage("-o RECIPE is required");
    std::string budget_text = opt.at("--budget");
    if (budget_text.ends_with("bits")) budget_text.resize(budget_text.size() - 4);
    const auto budget = number_list(budget_text);
    if (!budget || budget->size() != 1 || !(budget->front() > 0.0))
        return usage("--budget " + opt.at("--budget") + ": expected stored bits per weight, e.g. 4.5 or 4.5bits");
    model::t2i_sensitivity_options o;
    o.a8 = !opt.count("--a16");
    if (opt.count("--candidates")) {
        o.candidates.clear();
        const std::string& list = opt.at("--candidates");
        for (std::size_t a = 0; a <= list.size();) {
            const std::size_t b = std::min(list.find(',', a), list.size());
            o.candidates.push_back(list.substr(a, b - a));
            try {
                (void)model::candidate_policy(o.candidates.back(), 4096, true);
            } catch (const std::exception& e) {
                return usage(std::string("--candidates: ") + e.what());
            }
            a = b + 1;
        }
    }
    for (const char* key : {"--steps", "--seeds", "--prompts"})
        if (opt.count(key)) {
            const auto v = number_list(opt.at(key));
            if (!v || v->size() != 1 || v->front() < 1 || v->front() > 1000 || v->front() != std::floor(v->front()))
                return usage(std::string(key) + " " + opt.at(key) + ": expected an integer in 1..1000");
            if (std::string_view(key) == "--steps") o.steps = static_cast<int>(v->front());
            else if (std::string_view(key) == "--seeds") o.prompts.seeds = model::t2i_calibration_prompts(static_cast<int>(v->front())).seeds;
        }
    if (opt.count("--prompts")) {
        const auto n = static_cast<std::size_t>(number_list(opt.at("--prompts"))->front());
        if (n > o.prompts.prompts.size())
            return usage("--prompts " + opt.at("--prompts") + ": there are " + std::to_string(o.prompts.prompts.size()) +
                         " calibration prompts");
        o.prompts.prompts.resize(n), o.prompts.digits.resize(n);
    }
    std::vector<double> shares = {0.3, 0.4, 0.5, 0.6, 0.7};
    if (opt.count("--shares")) {
        const auto v = number_list(opt.at("--shares"));
        if (!v) return usage("--shares " + opt.at("--shares") + ": expected fractions such as 0.3,0.5");
        for (double x : *v)
            if (!(x > 0.0 && x < 1.0)) return usage("--shares: " + std::to_string(x) + " is not in (0, 1)");
        shares = *v;
    }
    if (opt.count("--table") && opt.count("--from-table")) return usage("--table and --from-table exclude each other");
    const std::string method = opt.count("--method") ? opt.at("--method") : std::string("rtn");
    try {
        (void)calib::parse_method(method);
    } catch (const std::exception& e) {
        return usage(std::string("--method: ") + e.what());
    }
    if (method != "rtn" && !opt.count("--stats"))
        return usage("--method " + method + " needs --stats (tcomp-calibrate T2I_DIR -o STATS)");
    try {
        const std::string stats_path = opt.count("--stats") ? opt.at("--stats") : "";
        const io::statistics_map stats = stats_path.empty() ? io::statistics_map{} : io::read_statistics(stats_path);
        model::recipe method_recipe;
        method_recipe.default_method = method;
        if (method != "rtn") o.build = model::method_builder(method_recipe, stats, stats_path);
        const fs::path dir = positional[0];
        if (model_cli::is_taef2_dir(dir)) return run_taef2(dir, opt, budget->front(), o, method_recipe, stats, stats_path);
        for (const char* k : {"--data", "--rows"})
            if (opt.count(k)) return usage(std::string(k) + " applies to the TAEF2 decoder only");
        const model::diffusion_checkpoint ck = model::diffusion_checkpoint::load(dir);
        const auto t0 = std::chrono::steady_clock::now();
        auto seconds = [&] { return std::chrono::duration<double>(std::chrono::steady_clock::now() - t0).count(); };
        std::vector<model::layer_sensitivity> table;
        if (opt.count("--from-table")) {
            table = table_from_json(opt.at("--from-table"), method);
        } else {
            std::size_t done = 0;
            const std::size_t total = model::diffusion_pipeline::layer_specs(ck.config).size();
            o.progress = [&](const std::string& layer) {
                std::fprintf(stderr, "\r  sensitivity %zu/%zu %-40s", ++done, total, layer.c_str());
            };
            table = model::measure_t2i_sensitivity(ck.config, ck.weights, o);
            std::fprintf(stderr, "\n");
            std::printf("tcomp-mixed: sensitivity of %zu layers x %zu candidates in %.1f s (%zu calibration images, DDIM-%d)\n",
                        table.size(), o.candidates.size(), seconds(), o.prompts.prompts.size() * o.prompts.seeds.size(),
                        o.steps);
            if (opt.count("--table")) {
                const nlohmann::json settings = {
                    {"metric", "content: 1 - SSIM; quality: 10^(-SQNR/10); of the images against FP32's, normalised per group"},
                    {"steps", o.steps},
                    {"prompts", o.prompts.prompts.size()},
                    {"seeds", o.prompts.seeds.size()}};
                std::ofstream(opt.at("--table")) << table_json(table, settings, o.a8, method).dump(1) << "\n";
                std::printf("tcomp-mixed: wrote the sensitivity table %s\n", opt.at("--table").c_str());
            }
        }
        const auto t1 = std::chrono::steady_clock::now();
        const model::t2i_allocation a = model::allocate_t2i(ck.config, ck.weights, table, budget->front(), o, shares);
        const double alloc_s = std::chrono::duration<double>(std::chrono::steady_clock::now() - t1).count();
        char desc[512];
        std::snprintf(desc, sizeof desc,
                      "tcomp-mixed: %s at %.3f stored bits per weight (budget %g), %s activations, method %s; content "
                      "share %.2f; calibration 1 - SSIM %.5f; %s allocation",
                      dir.filename().string().c_str(), a.average_bits, budget->front(), o.a8 ? "INT8" : "float", method.c_str(),
                      a.content_share, a.calibration_score, a.exact ? "exact" : "rounded");
        const std::string widths = write_recipe(table, a.policies, desc, method, opt.at("-o"));
        std::printf("tcomp-mixed: %.3f stored bits per weight (budget %g): %s; content share %.2f, calibration 1 - SSIM "
                    "%.5f; allocation and share search %.1f s -> %s\n",
                    a.average_bits, budget->front(), widths.c_str(), a.content_share, a.calibration_score, alloc_s,
                    opt.at("-o").c_str());
        return 0;
    } catch (const std::exception& e) {
        std::fprintf(stderr, "tcomp-mixed: error: %s\n", e.what());
        return 1;
    }
}

}  // namespace tcomp::tools::mixed_cli

namespace tcomp::tools {
int mixed_main(int argc, char** argv) { return mixed_cli::run(argc, argv); }
}  // namespace tcomp::tools
