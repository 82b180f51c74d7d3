// tcomp demo: six recipes on four models, end to end, in one table: model size, quality kept, time taken.
//
//   tcomp_demo [--models DIR] [--threads N] [--png FILE] [--stories N] [--quick]
//
// What runs. Every model gets the same six recipes: fp32, w8a8, w8a16, w4a16, w4a8 and a w4a8 + w8a8 mix (each
// model's own layer patterns; 4-bit recipes use groups of 32 where K allows, per channel where it does not).
// The MNIST MLP also runs "nf4 + fp8" (NF4 per channel, a descriptor without a SIMD kernel family: the reference
// path; FP8 E4M3: the weight-only kernels, decoded by shifts), and a list under the table names every recipe's
// layers that do not run on the SIMD kernels, with the reason.
// --quick (CTest, scripts/test.sh) runs four of them on every model (fp32, w8a8, w4a16 and the mix; nf4 + fp8
// on the MLP), 8 dev stories instead of 40, one TAEF2 dev latent instead of two and 10 DDIM steps instead of 20 for
// t2i_mnist. mnist_mlp, taef2_decoder and t2i_mnist have no stand-in:
// without their files they are skipped (and say so).
//
// Models (from DIR, default ../shared/models beside the source tree, when they are there):
//   stories260K    LLaMA-architecture language model: dev-set perplexity (and a greedy text sample)
//   mnist_mlp      784-500-10 classifier: accuracy on the 10,000 MNIST test images
//   taef2_decoder  the real TAEF2 image decoder: PSNR of the decoded dev latents against FP32
//   t2i_mnist      the trained text-to-image model (text encoder + DiT, 32x32 digits), DDIM with guidance 3:
//                  digits the MNIST MLP reads as the prompted one (of 10), PSNR / SSIM against the FP32 images
// Without DIR, a seeded stand-in LLaMA runs instead so the demo still shows what each recipe costs. Every recipe is a JSON text (model/recipe.hpp), resolved against the model's layer names; the
// stories260K mix is the file examples/recipes/stories260k_mix.json, which tcomp-quantize also takes (CTest
// tools.quantize_stories260k_mix), so the demo and the tool run one recipe.
//
// Two sizes per row: stored MB, what a compressed model file (io/compressed_model.hpp, tcomp-quantize) holds,
// and kernel MB, what the CPU kernels stream per call (cpu::packed_weights::kernel_bytes(): the kernels' panel
// packing, K padded to their block, float scales per row group, int32 weight sums). "vs FP16" uses stored MB.
// The PNG (default tcomp_demo.png) shows the TAEF2 decodes and the generated digits, one column per recipe.
#include <tcomp/io/compressed_model.hpp>
#include <tcomp/io/png.hpp>
#include <tcomp/io/safetensors.hpp>
#include <tcomp/kernel/cpu/dispatch.hpp>
#include <tcomp/metrics/metrics.hpp>
#include <tcomp/model/diffusion_checkpoint.hpp>
#include <tcomp/model/llama_loader.hpp>
#include <tcomp/model/mlp_classifier.hpp>
#include <tcomp/model/recipe.hpp>
#include <tcomp/model/t2i_evaluation.hpp>
#include <tcomp/model/taef2_decoder.hpp>
#include <tcomp/model/tokenizer.hpp>

#include <algorithm>
#include <atomic>
#include <chrono>
#include <cmath>
#include <cstdio>
#include <cstddef>
#include <cstdint>
#include <cstdlib>
#include <exception>
#include <filesystem>
#include <new>
#include <optional>
#include <random>
#include <string>
#include <vector>

// Peak activation bytes, measured: every C++ allocation (operator new: std::vector activations, KV caches,
// kernel scratch) is counted, and the table reports the peak during an evaluation above what was live when it
// began. Weights (already allocated) do not count; packed weights use aligned_alloc and are not seen anyway.
namespace heap {
std::atomic<std::size_t> live{0}, peak{0};
constexpr std::size_t header = alignof(std::max_align_t);
void* allocate(std::size_t n) {
    void* p = std::malloc(n + header);
    if (!p) throw std::bad_alloc();
    *static_cast<std::size_t*>(p) = n;
    const std::size_t now = live.fetch_add(n) + n;
    for (std::size_t seen = peak.load(); now > seen && !peak.compare_exchange_weak(seen, now);) {
    }
    return static_cast<char*>(p) + header;
}
void release(void* q) noexcept {
    if (!q) return;
    void* p = static_cast<char*>(q) - header;
    live.fetch_sub(*static_cast<std::size_t*>(p));
    std::free(p);
}
// Aligned forms: the block starts `a` bytes (at least the header) before the returned pointer; the size and the
// malloc'd base sit in the two words just below it.
void* allocate_aligned(std::size_t n, std::size_t a) {
    if (a < 2 * sizeof(void*)) a = 2 * sizeof(void*);
    void* base = std::malloc(n + 2 * a);
    if (!base) throw std::bad_alloc();
    auto addr = (reinterpret_cast<std::uintptr_t>(base) + 2 * sizeof(void*) + a - 1) / a * a;
    auto* words = reinterpret_cast<void**>(addr);
    words[-1] = base;
    words[-2] = reinterpret_cast<void*>(n);
    const std::size_t now = live.fetch_add(n) + n;
    for (std::size_t seen = peak.load(); now > seen && !peak.compare_exchange_weak(seen, now);) {
    }
    return reinterpret_cast<void*>(addr);
}
void release_aligned(void* q) noexcept {
    if (!q) return;
    auto* words = static_cast<void**>(q);
    live.fetch_sub(reinterpret_cast<std::size_t>(words[-2]));
    std::free(words[-1]);
}
/// Starts a measurement: the peak is reset to what is live now, which is the baseline returned.
std::size_t start() {
    const std::size_t base = live.load();
    peak.store(base);
    return base;
}
}  // namespace heap

// Every replaceable form (plain, array, nothrow, aligned, sized): GCC pairs them, and a form left to the
// library would free a pointer this allocator made (or the reverse). std::stable_sort, for one, takes its
// buffer with nothrow new.
void* operator new(std::size_t n) { return heap::allocate(n); }
void* operator new[](std::size_t n) { return heap::allocate(n); }
void* operator new(std::size_t n, const std::nothrow_t&) noexcept {
    try { return heap::allocate(n); } catch (...) { return nullptr; }
}
void* operator new[](std::size_t n, const std::nothrow_t&) noexcept {
    try { return heap::allocate(n); } catch (...) { return nullptr; }
}
void* operator new(std::size_t n, std::align_val_t a) { return heap::allocate_aligned(n, std::size_t(a)); }
void* operator new[](std::size_t n, std::align_val_t a) { return heap::allocate_aligned(n, std::size_t(a)); }
void* operator new(std::size_t n, std::align_val_t a, const std::nothrow_t&) noexcept {
    try { return heap::allocate_aligned(n, std::size_t(a)); } catch (...) { return nullptr; }
}
void* operator new[](std::size_t n, std::align_val_t a, const std::nothrow_t&) noexcept {
    try { return heap::allocate_aligned(n, std::size_t(a)); } catch (...) { return nullptr; }
}
void operator delete(void* p) noexcept { heap::release(p); }
void operator delete[](void* p) noexcept { heap::release(p); }
void operator delete(void* p, std::size_t) noexcept { heap::release(p); }
void operator delete[](void* p, std::size_t) noexcept { heap::release(p); }
void operator delete(void* p, const std::nothrow_t&) noexcept { heap::release(p); }
void operator delete[](void* p, const std::nothrow_t&) noexcept { heap::release(p); }
void operator delete(void* p, std::align_val_t) noexcept { heap::release_aligned(p); }
void operator delete[](void* p, std::align_val_t) noexcept { heap::release_aligned(p); }
void operator delete(void* p, std::size_t, std::align_val_t) noexcept { heap::release_aligned(p); }
void operator delete[](void* p, std::size_t, std::align_val_t) noexcept { heap::release_aligned(p); }
void operator delete(void* p, std::align_val_t, const std::nothrow_t&) noexcept { heap::release_aligned(p); }
void operator delete[](void* p, std::align_val_t, const std::nothrow_t&) noexcept { heap::release_aligned(p); }

namespace {

namespace fs = std::filesystem;
using namespace tcomp;

struct settings {
    fs::path models = fs::path(TCOMP_SHARED_DIR) / "models";
    fs::path png = "tcomp_demo.png";
    int threads = 2;
    int stories = 40;   // dev stories for the perplexity
    bool quick = false; // CTest: fewer stories and latents, four recipes per model
};

/// The recipes files (examples/recipes/ beside this source file).
const fs::path recipe_dir = fs::path(__FILE__).parent_path() / "recipes";

struct recipe_spec {
    const char* name;
    const char* json;       // the recipe, or
    const char* file = "";  // a file of recipe_dir
    bool quick = true;      // also run with --quick
};

model::recipe load_recipe(const recipe_spec& spec) {
    if (*spec.file) return model::recipe::from_file(recipe_dir / spec.file);
    return model::recipe::parse(spec.json, spec.name);
}

struct result {
    std::string model, recipe, quality;
    double stored_mb = 0, kernel_mb = 0, fp16_ratio = 0, seconds = 0, speedup = 0;
    double activation_mb = 0;  // peak heap above the baseline during the evaluation
};

/// Bytes a compressed model file (io/compressed_model.hpp, as tcomp-quantize writes it) holds for one layer, from
/// its policy's packed layout: codes (N x ceil(K * bits / 8)), F32 scales or one byte per sub-byte scale entry, one
/// byte per zero point, the tensor scale, the N:M indices; N x K F32 for fp32; plus the float bias. This is
/// tcomp-inspect's "bytes of tensor data" (the file less its JSON header), and packed_buffers::bytes() except that
/// the file keeps a byte per zero point (packed_buffers packs them at the code width). The writer stores scales
/// as F16 only when every one is exactly an F16 (GPTQ imports); compress<P> of float weights gives F32 ones.
/// (model::linear has no accessor for its stored form: weight_bytes() is the kernels' packing.)
std::size_t stored_bytes(const model::linear& l) {
    const index_t n = l.out_features(), k = l.in_features();
    std::size_t b = l.bias().size() * sizeof(float);
    if (!l.desc()) return b + static_cast<std::size_t>(n * k) * sizeof(float);
    const packed_layout p = expected_layout(*l.desc(), n, k, l.name.c_str());
    if (!p.fixed_row_length())
        tcomp::detail::throw_error<error>("demo: ", l.name, " (", l.policy(), "): rows of varying length have no file form");
    const auto cells = static_cast<std::size_t>(p.scale_count());
    b += static_cast<std::size_t>(n) * p.row_code_bytes() + p.metadata_bytes();
    if (p.scale_bits == 32) b += cells * sizeof(float);
    else if (p.scale_bits > 0) b += cells;
    if (p.has_zero_points) b += cells;
    if (p.has_tensor_scale) b += sizeof(float);
    return b;
}

/// Layers that do not run on the SIMD kernels, per model and recipe, with the reason (linear::kernel_note):
/// printed under the table, so a recipe's reference-path layers are never silent.
std::vector<std::string> path_notes;

template <class ForEachLinear>
void note_paths(const std::string& model, const std::string& recipe, ForEachLinear&& for_each) {
    std::size_t total = 0, off = 0;
    std::string first;
    for_each([&](const model::linear& l) {
        ++total;
        const std::string note = l.kernel_note();
        if (note.empty()) return;
        if (off++ == 0) first = l.name + ": " + note;
    });
    if (off > 0)
        path_notes.push_back(model + " / " + recipe + ": " + std::to_string(off) + " of " + std::to_string(total) +
                             " layers not on the SIMD kernels (first: " + first + ")");
}

double peak_activation_mb(std::size_t baseline) { return double(heap::peak.load() - baseline) / 1e6; }

double now() {
    return std::chrono::duration<double>(std::chrono::steady_clock::now().time_since_epoch()).count();
}

void progress(const std::string& what) {
    std::printf("  .. %s\n", what.c_str());
    std::fflush(stdout);
}

/// Fills "x smaller than FP16" (stored bytes) and "x faster than FP32" from the FP32 row (the first of each model).
void finish(std::vector<result>& rows, std::size_t first) {
    const double fp32_mb = rows[first].stored_mb, fp32_s = rows[first].seconds;
    for (std::size_t i = first; i < rows.size(); ++i) {
        rows[i].fp16_ratio = fp32_mb / 2.0 / rows[i].stored_mb;
        rows[i].speedup = fp32_s / rows[i].seconds;
    }
}

// ------------------------------------------------------------------------------------------------ LLaMA
const recipe_spec llama_recipes[] = {
    {"fp32", R"({"default": "fp32"})"},
    {"w8a8", R"({"default": "w8a8"})"},
    {"w8a16", R"({"default": "w8a16"})", "", false},
    // K = 172 (down_proj) takes no group size: 4-bit per channel there.
    {"w4a16", R"({"default": "w4a16_g32", "layers": [{"match": "*.down_proj", "policy": "w4a16_pc"}]})"},
    {"w4a8", R"({"default": "w4a8_g32", "layers": [{"match": "*.down_proj", "policy": "w4a8_pc"}]})", "", false},
    // The file tcomp-quantize takes too (tools/CMakeLists.txt): one recipe for the demo and the tool.
    {"w4a8 + w8a8 mix", "", "stories260k_mix.json"},
};

/// Stored bytes of a LLaMA as tcomp-quantize writes it: float embeddings and norms, every projection
/// (stored_bytes), and the head: its own layer when untied; when tied, a compressed copy of the embeddings
/// (lm_head.weight) unless it is fp32 (then it is the embeddings, nothing more).
std::size_t llama_stored_bytes(const model::llama_model& m) {
    const model::llama_config& c = m.config();
    const auto h = static_cast<std::size_t>(c.hidden_size);
    std::size_t b = (static_cast<std::size_t>(c.vocab_size) * h + h + 2 * h * m.layers().size()) * sizeof(float);
    m.for_each_linear([&](const model::linear& l) { b += stored_bytes(l); });
    if (!c.tie_word_embeddings || m.lm_head().policy() != "fp32") b += stored_bytes(m.lm_head());
    return b;
}

/// The stand-in's configuration: stories260K's shapes.
model::llama_config seeded_llama_config() {
    model::llama_config c;
    c.hidden_size = 64, c.intermediate_size = 172, c.num_hidden_layers = 5, c.num_attention_heads = 8;
    c.num_key_value_heads = 4, c.head_dim = 8, c.vocab_size = 512, c.max_position_embeddings = 512;
    c.tie_word_embeddings = true, c.rms_norm_eps = 1e-5;
    return c;
}

/// A seeded random LLaMA (the stand-in when stories260K is absent).
model::llama_model seeded_llama(const model::policy_chooser& choose) {
    const model::weight_source source = [](const std::string& name, const std::vector<std::int64_t>& shape) {
        std::int64_t n = 1;
        for (auto s : shape) n *= s;
        std::mt19937 gen(static_cast<unsigned>(std::hash<std::string>{}(name)));
        const bool norm = name.find("norm") != std::string::npos;
        std::normal_distribution<float> d(0.0f, 1.0f / std::sqrt(static_cast<float>(shape.back())));
        std::vector<float> v(static_cast<std::size_t>(n));
        for (auto& x : v) x = norm ? 1.0f : d(gen);
        return v;
    };
    return model::llama_model(seeded_llama_config(), source, choose);
}

void run_llama(const settings& s, std::vector<result>& rows, std::vector<std::string>& samples) {
    const fs::path dir = s.models / "stories260K";
    const bool real = fs::exists(dir / "config.json");
    const std::string label = real ? "stories260K" : "llama (stand-in)";
    std::printf("\n[%s] %s\n", label.c_str(), real ? dir.c_str() : "stories260K not found: random weights");
    // Evaluation tokens: the dev stories, or seeded token sequences for the stand-in.
    std::vector<std::vector<int>> stories;
    if (real) {
        const auto f = io::safetensors_file::open(dir / "tinystories_dev_tokens.safetensors");
        const auto tokens = io::to_float(f.tensor("tokens"));
        const auto offsets = io::to_float(f.tensor("offsets"));
        for (std::size_t i = 0; i + 1 < offsets.size() && static_cast<int>(stories.size()) < s.stories; ++i)
            stories.emplace_back(tokens.begin() + static_cast<std::ptrdiff_t>(offsets[i]),
                                 tokens.begin() + static_cast<std::ptrdiff_t>(offsets[i + 1]));
    } else {
        std::mt19937 gen(7);
        std::uniform_int_distribution<int> tok(3, 511);
        for (int i = 0; i < std::min(s.stories, 8); ++i) {
            std::vector<int> t(128);
            t[0] = 1;
            for (std::size_t j = 1; j < t.size(); ++j) t[j] = tok(gen);
            stories.push_back(std::move(t));
        }
    }
    std::optional<model::bpe_tokenizer> tokenizer;
    if (real) tokenizer = model::bpe_tokenizer::load(dir / "tokenizer.json");

    const std::size_t first = rows.size();
    std::vector<std::vector<float>> fp32_logits;
    for (const auto& spec : llama_recipes) {
        if (s.quick && !spec.quick) continue;
        progress(label + ": " + spec.name);
        const auto recipe = load_recipe(spec);
        model::llama_config config;
        if (real) config = model::llama_config::from_file(dir / "config.json");
        else config = seeded_llama_config();
        const auto chooser = model::policy_chooser_for(recipe.resolve(model::llama_layer_names(config), spec.name));
        model::llama_model m = real ? model::load_llama(dir, chooser) : seeded_llama(chooser);
        m.set_threads(s.threads);
        // Perplexity: each story predicts tokens 1..n-1 from its prefix, in one forward pass. The activation
        // peak is measured per forward pass (the logits the demo keeps for the stand-in are not the model's).
        std::vector<std::vector<float>> all_logits;
        double activation_mb = 0;
        const double t0 = now();
        double nll = 0;
        std::size_t count = 0;
        for (const auto& story : stories) {
            m.reset();
            const std::size_t base = heap::start();
            std::vector<float> logits = m.forward(story);
            activation_mb = std::max(activation_mb, peak_activation_mb(base));
            const auto v = static_cast<std::size_t>(config.vocab_size);
            for (std::size_t i = 0; i + 1 < story.size(); ++i) {
                nll += metrics::token_nll(std::span<const float>(logits.data() + i * v, v), story[i + 1]);
                ++count;
            }
            if (!real) all_logits.push_back(std::move(logits));
        }
        const double seconds = now() - t0;
        result r{label, spec.name, "", double(llama_stored_bytes(m)) / 1e6, double(m.weight_bytes()) / 1e6, 0, seconds, 0,
                 activation_mb};
        char q[96];
        if (real) {
            std::snprintf(q, sizeof q, "perplexity %.4f", std::exp(nll / double(count)));
        } else {
            // No trained model, so no meaningful perplexity: agreement with FP32's next-token choice.
            if (fp32_logits.empty()) fp32_logits = all_logits;
            double agree = 0;
            std::size_t n = 0;
            for (std::size_t i = 0; i < all_logits.size(); ++i) {
                const auto rows_i = static_cast<index_t>(all_logits[i].size() / 512);
                agree += metrics::top1_agreement(matrix_view<const float>(fp32_logits[i].data(), rows_i, 512),
                                                 matrix_view<const float>(all_logits[i].data(), rows_i, 512)) * rows_i;
                n += static_cast<std::size_t>(rows_i);
            }
            std::snprintf(q, sizeof q, "top-1 vs FP32 %.3f", agree / double(n));
        }
        r.quality = q;
        rows.push_back(r);
        note_paths(label, spec.name, [&](auto&& f) { m.for_each_linear(f); });
        if (tokenizer) {
            m.reset();
            samples.push_back(std::string(spec.name) + ": " + tokenizer->decode(m.generate_greedy(tokenizer->bos(), 30)));
        }
    }
    finish(rows, first);
}

// ------------------------------------------------------------------------------------------------ MNIST
const recipe_spec mnist_recipes[] = {
    {"fp32", R"({"default": "fp32"})"},
    {"w8a8", R"({"default": "w8a8"})"},
    {"w8a16", R"({"default": "w8a16"})", "", false},
    // K = 784 and 500 take no group size: 4-bit per channel.
    {"w4a16", R"({"default": "w4a16_pc"})"},
    {"w4a8", R"({"default": "w4a8_pc"})", "", false},
    {"w4a8 + w8a8 mix", R"({"description": "4-bit hidden layer, 8-bit output layer",
        "default": "w4a8_pc", "layers": [{"match": "fc2", "policy": "w8a8"}]})"},
    // NF4 per channel has no SIMD kernel family (the typed NF4 is per 64; 784 is not a multiple): the reference
    // path, reported under the table. FP8 per channel runs the weight-only kernels.
    {"nf4 + fp8", R"({"description": "QLoRA NF4 per channel inside, FP8 E4M3 output layer",
        "default": "w=nf4:channel", "layers": [{"match": "fc2", "policy": "fp8"}]})"},
};

void run_mnist(const settings& s, std::vector<result>& rows) {
    const fs::path dir = s.models / "mnist_mlp";
    if (!fs::exists(dir / "model.safetensors")) {
        std::printf("\n[mnist_mlp] %s not found: skipped (no stand-in: accuracy needs the trained model)\n",
                    dir.c_str());
        return;
    }
    std::printf("\n[mnist_mlp] %s\n", dir.c_str());
    const auto test = io::safetensors_file::open(dir / "test_set.safetensors");
    std::vector<float> images = io::to_float(test.tensor("images"));
    for (auto& v : images) v /= 255.0f;
    const std::vector<float> label_f = io::to_float(test.tensor("labels"));
    std::vector<int> labels(label_f.begin(), label_f.end());
    const auto n = static_cast<index_t>(labels.size());
    const std::size_t first = rows.size();
    for (const auto& spec : mnist_recipes) {
        if (s.quick && !spec.quick) continue;
        progress(std::string("mnist_mlp: ") + spec.name);
        auto m = model::mlp_classifier::load(dir / "model.safetensors", load_recipe(spec));
        m.set_threads(s.threads);
        const std::size_t base = heap::start();
        const double t0 = now();
        const std::vector<int> predicted = m.predict(matrix_view<const float>(images.data(), n, 784));
        const double seconds = now() - t0;
        char q[64];
        std::snprintf(q, sizeof q, "accuracy %.2f%%", 100.0 * metrics::accuracy(predicted, labels));
        std::size_t stored = 0;
        for (const model::linear& l : m.layers()) stored += stored_bytes(l);
        rows.push_back({"mnist_mlp", spec.name, q, double(stored) / 1e6, double(m.weight_bytes()) / 1e6, 0, seconds, 0,
                        peak_activation_mb(base)});
        note_paths("mnist_mlp", spec.name, [&](auto&& f) {
            for (const model::linear& l : m.layers()) f(l);
        });
    }
    finish(rows, first);
}

// ------------------------------------------------------------------------------------------------ images
const recipe_spec image_recipes[] = {
    {"fp32", R"({"default": "fp32"})"},
    {"w8a8", R"({"default": "w8a8"})"},
    {"w8a16", R"({"default": "w8a16"})", "", false},
    {"w4a16", R"({"default": "w4a16_g32"})"},
    {"w4a8", R"({"default": "w4a8_g32"})", "", false},
    {"w4a8 + w8a8 mix", R"({"description": "4-bit inside, 8-bit on the first and last convs and the 1x1 pools",
        "default": "w4a8_g32", "layers": [{"match": "1", "policy": "w8a8"}, {"match": "19", "policy": "w8a8"},
        {"match": "*.pool.*", "policy": "w8a8"}]})"},
};

const recipe_spec t2i_recipes[] = {
    {"fp32", R"({"default": "fp32"})"},
    {"w8a8", R"({"default": "w8a8"})"},
    {"w8a16", R"({"default": "w8a16"})", "", false},
    // K = 16 (dit.x_embedder: 4 x 4 patches of one channel) takes no group of 32: 4-bit per channel there.
    {"w4a16", R"({"default": "w4a16_g32", "layers": [{"match": "dit.x_embedder", "policy": "w4a16_pc"}]})"},
    {"w4a8", R"({"default": "w4a8_g32", "layers": [{"match": "dit.x_embedder", "policy": "w4a8_pc"}]})", "", false},
    // The file tcomp-eval takes too (tools/CMakeLists.txt, tools.eval_t2i).
    {"w4a8 + w8a8 mix", "", "t2i_mnist_mix.json"},
};

/// One 256x256 tile of the PNG: image `index` of a batch x 3 x H x W float tensor in [0, 1].
struct tile {
    std::vector<std::uint8_t> rgb;
    index_t h = 0, w = 0;
};

tile to_tile(const std::vector<float>& chw, index_t index, index_t h, index_t w) {
    tile t{std::vector<std::uint8_t>(static_cast<std::size_t>(h * w * 3)), h, w};
    const float* img = chw.data() + index * 3 * h * w;
    for (index_t y = 0; y < h; ++y)
        for (index_t x = 0; x < w; ++x)
            for (index_t c = 0; c < 3; ++c) {
                const float v = std::clamp(img[(c * h + y) * w + x], 0.0f, 1.0f);
                t.rgb[static_cast<std::size_t>((y * w + x) * 3 + c)] = static_cast<std::uint8_t>(std::lround(v * 255.0f));
            }
    return t;
}

/// Ten 32 x 32 digits in [-1, 1] as one 256 x 256 tile: a 4 x 3 grid of 64 x 64 cells (pixels doubled), white
/// digits on black as MNIST draws them.
tile digits_tile(const std::vector<float>& images, index_t count) {
    tile t{std::vector<std::uint8_t>(256 * 256 * 3, 0), 256, 256};
    for (index_t i = 0; i < std::min<index_t>(count, 12); ++i) {
        const index_t ox = (i % 4) * 64, oy = 32 + (i / 4) * 64;
        for (index_t y = 0; y < 64; ++y)
            for (index_t x = 0; x < 64; ++x) {
                const float v = std::clamp(images[static_cast<std::size_t>(i * 1024 + (y / 2) * 32 + x / 2)], -1.0f, 1.0f);
                const auto u = static_cast<std::uint8_t>(std::lround((v + 1.0f) * 127.5f));
                for (index_t c = 0; c < 3; ++c) t.rgb[static_cast<std::size_t>(((oy + y) * 256 + ox + x) * 3 + c)] = u;
            }
    }
    return t;
}

/// The trained text-to-image model: "a handwritten <digit>" for 0..9, one seed, DDIM with classifier-free
/// guidance 3 (the scale that gives the FP32 model its best prompt adherence); the MNIST MLP judges the digits.
void run_t2i(const settings& s, std::vector<result>& rows, std::vector<std::vector<tile>>& png_rows) {
    const fs::path dir = s.models / "t2i_mnist", judge_path = s.models / "mnist_mlp" / "model.safetensors";
    if (!fs::exists(dir / "config.json") || !fs::exists(judge_path)) {
        std::printf("\n[t2i_mnist] %s (or the MNIST MLP that judges it) not found: skipped\n", dir.c_str());
        return;
    }
    const auto ck = model::diffusion_checkpoint::load(dir);
    const model::mlp_classifier judge = model::mlp_classifier::load(judge_path);
    const model::t2i_image_format format{ck.image_min, ck.image_max, ck.image_pad};
    model::diffusion_config dc = ck.config;
    dc.guidance_scale = 3.0;
    dc.steps = s.quick ? 10 : 20;
    model::t2i_prompt_set set = model::t2i_evaluation_prompts(1);
    set.prompts.resize(10), set.digits.resize(10);  // "a handwritten zero" .. "nine"
    std::printf("\n[t2i_mnist] %s: trained text encoder + DiT, 32x32 digits; DDIM %d steps, guidance %.0f, prompts "
                "\"a handwritten zero\" .. \"nine\", seed %llu; the MNIST MLP judges the digits\n",
                dir.c_str(), dc.steps, dc.guidance_scale, static_cast<unsigned long long>(set.seeds[0]));
    std::size_t first = rows.size();
    std::optional<model::t2i_images> fp32;
    std::vector<tile> generated;
    for (const auto& spec : t2i_recipes) {
        if (s.quick && !spec.quick) continue;
        progress(std::string("t2i_mnist: ") + spec.name);
        model::layer_policy_map policies;
        policies.layers = load_recipe(spec).resolve(model::diffusion_pipeline::layer_names(dc), spec.name);
        const model::diffusion_pipeline pipe(dc, policies, ck.weights);
        const std::size_t base = heap::start();
        const double t0 = now();
        const model::t2i_images im = model::generate_images(pipe, set, s.threads);
        const double seconds = now() - t0;
        const double activation_mb = peak_activation_mb(base);
        if (!fp32) fp32 = im;
        const model::t2i_scores sc = model::score_images(im, judge, format, &*fp32);
        char q[128];
        if (&*fp32 == &im || im.pixels == fp32->pixels)
            std::snprintf(q, sizeof q, "digits right %d/%d", static_cast<int>(std::lround(sc.adherence * 10)), 10);
        else
            std::snprintf(q, sizeof q, "digits right %d/10, PSNR %.1f dB, SSIM %.3f",
                          static_cast<int>(std::lround(sc.adherence * 10)), sc.psnr_db, sc.ssim);
        std::size_t stored = 0;
        pipe.for_each_linear([&](const model::linear& l) { stored += stored_bytes(l); });
        rows.push_back({"t2i_mnist", spec.name, q, double(stored) / 1e6, double(pipe.linear_weight_bytes()) / 1e6, 0,
                        seconds, 0, activation_mb});
        note_paths("t2i_mnist", spec.name, [&](auto&& f) { pipe.for_each_linear(f); });
        generated.push_back(digits_tile(im.pixels, im.count));
    }
    finish(rows, first);
    png_rows.push_back(std::move(generated));
}

void run_images(const settings& s, std::vector<result>& rows, std::vector<std::vector<tile>>& png_rows) {
    const fs::path dir = s.models / "taef2_decoder";
    if (!fs::exists(dir / "config.json")) {
        std::printf("\n[taef2_decoder] %s not found: skipped\n", dir.c_str());
        return;
    }
    std::printf("\n[taef2_decoder] %s\n", dir.c_str());
    const model::taef2_decoder fp32_decoder = model::taef2_decoder::load(dir);  // its conv names
    const auto lf = io::safetensors_file::open(dir / "taef2_dev_latents.safetensors");
    const io::tensor_view& lt = lf.tensor("latents");
    const index_t batch = s.quick ? 1 : lt.shape[0], h = lt.shape[2], w = lt.shape[3];
    std::vector<float> latents = io::to_float(lt);
    latents.resize(static_cast<std::size_t>(batch * lt.shape[1] * h * w));
    std::vector<float> reference = io::to_float(lf.tensor("fp32_decoded"));
    reference.resize(static_cast<std::size_t>(batch * 3 * 8 * h * 8 * w));
    std::vector<tile> decoded;
    const std::size_t first = rows.size();
    for (const auto& spec : image_recipes) {
        if (s.quick && !spec.quick) continue;
        progress(std::string("taef2_decoder: ") + spec.name);
        std::vector<std::string> names;
        for (const auto* c : fp32_decoder.convs()) names.push_back(c->name);
        const auto recipe = load_recipe(spec);
        model::taef2_decoder dec = model::taef2_decoder::load(dir, recipe.resolve(names, spec.name));
        dec.set_threads(s.threads);
        const std::size_t base = heap::start();
        const double t0 = now();
        const std::vector<float> out = dec.decode(latents, batch, h, w);
        const double seconds = now() - t0;
        const double activation_mb = peak_activation_mb(base);
        char q[96];
        std::snprintf(q, sizeof q, "PSNR %.1f dB, SSIM %.4f", metrics::psnr_db(reference, out),
                      metrics::ssim(reference, out, batch * 3, 8 * h, 8 * w));
        std::size_t stored = 0;
        for (const model::conv2d* c : dec.convs()) stored += stored_bytes(c->gemm());
        rows.push_back({"taef2_decoder", spec.name, q, double(stored) / 1e6, double(dec.weight_bytes()) / 1e6, 0, seconds, 0,
                        activation_mb});
        note_paths("taef2_decoder", spec.name, [&](auto&& f) {
            for (const model::conv2d* c : dec.convs()) f(c->gemm());
        });
        decoded.push_back(to_tile(out, 0, 8 * h, 8 * w));
    }
    finish(rows, first);
    png_rows.push_back(std::move(decoded));
}

void write_png(const fs::path& path, const std::vector<std::vector<tile>>& png_rows) {
    if (png_rows.empty()) return;
    const index_t th = png_rows[0][0].h, tw = png_rows[0][0].w, gap = 4;
    std::size_t cols = 0;
    for (const auto& r : png_rows) cols = std::max(cols, r.size());
    const index_t width = static_cast<index_t>(cols) * (tw + gap) - gap;
    const index_t height = static_cast<index_t>(png_rows.size()) * (th + gap) - gap;
    std::vector<std::uint8_t> rgb(static_cast<std::size_t>(width * height * 3), 255);
    for (std::size_t r = 0; r < png_rows.size(); ++r)
        for (std::size_t c = 0; c < png_rows[r].size(); ++c)
            for (index_t y = 0; y < th; ++y)
                std::copy_n(png_rows[r][c].rgb.data() + y * tw * 3, tw * 3,
                            rgb.data() + ((static_cast<index_t>(r) * (th + gap) + y) * width +
                                          static_cast<index_t>(c) * (tw + gap)) * 3);
    io::write_png_rgb8(path, rgb, static_cast<std::size_t>(width), static_cast<std::size_t>(height));
    std::printf("\nwrote %s: one column per image recipe (row 1: TAEF2 decodes of dev latent 0; row 2: t2i_mnist's "
                "digits 0-9 for \"a handwritten <digit>\")\n", path.c_str());
}

int usage(const char* why) {
    std::fprintf(stderr, "tcomp_demo: %s\nusage: tcomp_demo [--models DIR] [--threads N] [--png FILE] [--stories N] [--quick]\n", why);
    return 2;
}

}  // namespace

int main(int argc, char** argv) {
    settings s;
    for (int i = 1; i < argc; ++i) {
        const std::string a = argv[i];
        auto value = [&]() -> const char* { return i + 1 < argc ? argv[++i] : nullptr; };
        if (a == "--quick") s.quick = true, s.stories = 8;
        else if (a == "--models" || a == "--png" || a == "--threads" || a == "--stories") {
            const char* v = value();
            if (!v) return usage((a + " needs a value").c_str());
            if (a == "--models") s.models = v;
            else if (a == "--png") s.png = v;
            else {
                char* end = nullptr;
                const long n = std::strtol(v, &end, 10);
                if (*end != '\0' || n < 1 || n > 1024) return usage((a + " must be an integer in 1..1024").c_str());
                (a == "--threads" ? s.threads : s.stories) = static_cast<int>(n);
            }
        } else {
            return usage(("unknown argument " + a).c_str());
        }
    }
    try {
        std::printf("tcomp demo: CPU path %s, %d threads, models from %s\n",
                    std::string(cpu::to_string(cpu::active_path())).c_str(), s.threads, s.models.c_str());
        const double t0 = now();
        std::vector<result> rows;
        std::vector<std::string> samples;
        std::vector<std::vector<tile>> png_rows;
        run_llama(s, rows, samples);
        run_mnist(s, rows);
        run_images(s, rows, png_rows);
        run_t2i(s, rows, png_rows);

        std::printf("\n%-21s %-16s %9s %8s %9s  %-42s %10s %8s %9s\n", "model", "recipe", "stored MB", "vs FP16",
                    "kernel MB", "quality", "latency", "vs FP32", "act. MB");
        for (const result& r : rows)
            std::printf("%-21s %-16s %9.3f %7.2fx %9.3f  %-42s %8.1fms %7.2fx %9.2f\n", r.model.c_str(),
                        r.recipe.c_str(), r.stored_mb, r.fp16_ratio, r.kernel_mb, r.quality.c_str(), 1e3 * r.seconds,
                        r.speedup, r.activation_mb);
        if (!path_notes.empty()) {
            std::printf("\nlayers on the scalar oracle or the reference path (the rest run the SIMD kernels):\n");
            for (const auto& t : path_notes) std::printf("  %s\n", t.c_str());
        }
        if (!samples.empty()) {
            std::printf("\ngreedy text from BOS (30 tokens) per recipe:\n");
            for (const auto& t : samples) std::printf("  %s\n", t.c_str());
        }
        write_png(s.png, png_rows);
        const std::string ran =
            s.quick ? "--quick: recipes fp32, w8a8, w4a16 and the w4a8 + w8a8 mix on every model found (and nf4 + fp8 "
                      "on the MNIST MLP), " +
                          std::to_string(s.stories) + " dev stories, 1 TAEF2 latent (without --quick: also w8a16 and "
                          "w4a8, 40 stories, 2 latents)"
                    : "every recipe (fp32, w8a8, w8a16, w4a16, w4a8, the w4a8 + w8a8 mix) on every model found, nf4 + "
                      "fp8 on the MNIST MLP, " +
                          std::to_string(s.stories) + " dev stories, 2 TAEF2 latents";
        std::printf("\n%s\n"
                    "stored MB: the tensor data of the compressed model file tcomp-quantize writes (what "
                    "tcomp-inspect totals): codes, scales, zero points, sparsity metadata, fp32 layers and biases as "
                    "floats. kernel MB: what the CPU kernels stream per call (their panel packing: K padded to the "
                    "kernel's block, float scales per row group, int32 weight sums). Both count the linear and conv "
                    "layers, and for the LLaMA also the float embeddings and norms and the head (tied: stored as a "
                    "compressed copy of the embeddings, nothing extra when fp32). vs FP16: the FP32 row's stored MB / 2 "
                    "over this row's. latency: the whole evaluation, wall time, %d threads. act. MB: peak heap "
                    "(operator new) above the baseline during the evaluation: activations, KV cache, kernel scratch.\n"
                    "total %.1f s\n",
                    ran.c_str(), s.threads, now() - t0);
    } catch (const std::exception& e) {
        std::fprintf(stderr, "tcomp_demo: %s\n", e.what());
        return 1;
    }
    return 0;
}
