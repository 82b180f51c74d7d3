// How a prompt becomes the token ids of the CLIP-style text encoder (text_encoder.hpp): [BOS] + the prompt's ids
// (at most context - 2 of them, as CLIP truncates) + [EOS], padded with PAD to the context length. Two vocabularies:
//   bytes   every byte is its own id (0..255), BOS 256, EOS 257, PAD 258: the seeded stand-in's;
//   words   a word-level vocabulary from a `tokenizer.json` of type "word-level" (../shared/models/t2i_mnist):
//           the text is lower-cased (if the file says so) and split on ASCII whitespace; a word that is not in
//           the vocabulary becomes UNK.
#pragma once

#include <algorithm>
#include <cctype>
#include <cstdint>
#include <filesystem>
#include <functional>
#include <map>
#include <string>
#include <string_view>
#include <vector>

#include <nlohmann/json.hpp>

#include "tcomp/core/error.hpp"
#include "tcomp/core/matrix_view.hpp"
#include "tcomp/io/safetensors.hpp"
#include "tcomp/io/small_file.hpp"

namespace tcomp::model {

/// The byte vocabulary on its own (ids and encode), for code that only needs the stand-in's tokens.
struct byte_tokenizer {
    static constexpr int bos = 256, eos = 257, pad = 258, vocab_size = 259;

    static std::vector<int> encode(std::string_view text, index_t context) {
        if (context < 2)
            tcomp::detail::throw_error<value_error>("byte_tokenizer::encode: context ", context,
                                                    " leaves no room for BOS and EOS");
        std::vector<int> t{bos};
        const auto n = std::min<std::size_t>(text.size(), static_cast<std::size_t>(context - 2));
        for (std::size_t i = 0; i < n; ++i) t.push_back(static_cast<unsigned char>(text[i]));
        t.push_back(eos);
        t.resize(static_cast<std::size_t>(context), pad);
        return t;
    }
};

class prompt_tokenizer {
public:
    enum class kind { bytes, words };

    /// The byte vocabulary (byte_tokenizer).
    static prompt_tokenizer bytes() { return prompt_tokenizer{}; }

    /// A "word-level" tokenizer.json (its text); io::file_error naming `origin` and the field for anything else:
    /// ids must be 0 .. vocab_size - 1, each used once, and the special ids distinct.
    static prompt_tokenizer parse(std::string_view text, const std::string& origin = "tokenizer.json") {
        nlohmann::json j;
        try {
            j = nlohmann::json::parse(text);
        } catch (const nlohmann::json::exception& e) {
            throw io::file_error(origin + ": not valid JSON (" + e.what() + ")");
        }
        auto fail = [&](const std::string& what) { throw io::file_error(origin + ": " + what); };
        if (!j.is_object() || !j.contains("type") || !j["type"].is_string() || j["type"] != "word-level")
            fail("\"type\" must be \"word-level\"");
        if (j.contains("split") && (!j["split"].is_string() || j["split"] != "whitespace"))
            fail("\"split\" must be \"whitespace\" (the only split this tokenizer implements)");
        prompt_tokenizer t;
        t.kind_ = kind::words;
        if (j.contains("lowercase")) {
            if (!j["lowercase"].is_boolean()) fail("\"lowercase\" must be true or false");
            t.lowercase_ = j["lowercase"].get<bool>();
        }
        if (!j.contains("vocab") || !j["vocab"].is_object() || j["vocab"].empty())
            fail("\"vocab\" must be a non-empty object of word: id");
        const auto n = static_cast<long long>(j["vocab"].size());
        if (n > (1 << 24)) fail("\"vocab\" has " + std::to_string(n) + " words (at most 2^24)");
        std::vector<char> used(static_cast<std::size_t>(n), 0);
        for (const auto& [word, id] : j["vocab"].items()) {
            if (!id.is_number_integer() || id.get<long long>() < 0 || id.get<long long>() >= n)
                fail("the id of \"" + word + "\" must be an integer in [0, " + std::to_string(n) + ")");
            const auto v = id.get<long long>();
            if (used[static_cast<std::size_t>(v)]) fail("id " + std::to_string(v) + " is given to two words");
            used[static_cast<std::size_t>(v)] = 1;
            if (word.empty() || std::any_of(word.begin(), word.end(), [](char c) { return is_space(c); }))
                fail("the word \"" + word + "\" is empty or holds whitespace: it could never match");
            t.vocab_.emplace(word, static_cast<int>(v));
        }
        t.vocab_size_ = static_cast<int>(n);
        if (j.contains("vocab_size") &&
            (!j["vocab_size"].is_number_integer() || j["vocab_size"].get<long long>() != n))
            fail("\"vocab_size\" differs from the " + std::to_string(n) + " words of \"vocab\"");
        auto special = [&](const char* key) {
            if (!j.contains(key) || !j[key].is_number_integer() || j[key].get<long long>() < 0 ||
                j[key].get<long long>() >= n)
                fail(std::string("\"") + key + "\" must be a token id in [0, " + std::to_string(n) + ")");
            return static_cast<int>(j[key].get<long long>());
        };
        t.bos_ = special("bos_id"), t.eos_ = special("eos_id"), t.pad_ = special("pad_id"), t.unk_ = special("unk_id");
        const int ids[] = {t.bos_, t.eos_, t.pad_, t.unk_};
        for (int a = 0; a < 4; ++a)
            for (int b = a + 1; b < 4; ++b)
                if (ids[a] == ids[b]) fail("bos_id, eos_id, pad_id and unk_id must be distinct");
        if (j.contains("context")) {
            if (!j["context"].is_number_integer() || j["context"].get<long long>() < 2)
                fail("\"context\" must be an integer >= 2");
            t.context_ = static_cast<index_t>(j["context"].get<long long>());
        }
        return t;
    }

    static prompt_tokenizer load(const std::filesystem::path& path) {
        const std::string text = tcomp::detail::read_small_file(path, std::uint64_t{64} << 20, "tokenizer");
        return parse(text, path.string());
    }

    kind type() const { return kind_; }
    int bos() const { return bos_; }
    int eos() const { return eos_; }
    int pad() const { return pad_; }
    /// The unknown-word id (words); -1 for bytes, which has none.
    int unk() const { return unk_; }
    int vocab_size() const { return vocab_size_; }
    /// The context length the file names (0: none named).
    index_t context() const { return context_; }

    /// [BOS] + ids of the first context - 2 words (bytes) + [EOS] + PAD up to `context`.
    std::vector<int> encode(std::string_view text, index_t context) const {
        if (kind_ == kind::bytes) return byte_tokenizer::encode(text, context);
        if (context < 2)
            tcomp::detail::throw_error<value_error>("prompt_tokenizer::encode: context ", context,
                                                    " leaves no room for BOS and EOS");
        std::vector<int> t{bos_};
        std::size_t i = 0;
        while (static_cast<index_t>(t.size()) < context - 1) {
            while (i < text.size() && is_space(text[i])) ++i;
            if (i == text.size()) break;
            std::size_t end = i;
            while (end < text.size() && !is_space(text[end])) ++end;
            std::string word(text.substr(i, end - i));
            if (lowercase_)
                for (char& c : word) c = static_cast<char>(std::tolower(static_cast<unsigned char>(c)));
            const auto it = vocab_.find(word);
            t.push_back(it == vocab_.end() ? unk_ : it->second);
            i = end;
        }
        t.push_back(eos_);
        t.resize(static_cast<std::size_t>(context), pad_);
        return t;
    }

private:
    static bool is_space(char c) { return c == ' ' || c == '\t' || c == '\n' || c == '\r' || c == '\f' || c == '\v'; }

    kind kind_ = kind::bytes;
    int bos_ = byte_tokenizer::bos, eos_ = byte_tokenizer::eos, pad_ = byte_tokenizer::pad, unk_ = -1;
    int vocab_size_ = byte_tokenizer::vocab_size;
    bool lowercase_ = true;
    index_t context_ = 0;
    std::map<std::string, int, std::less<>> vocab_;
};

}  // namespace tcomp::model
