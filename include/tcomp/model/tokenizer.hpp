// Decoding token ids to text with a llama2.c-style BPE vocabulary (`tokenizer.json` of type "llama2c-bpe":
// pieces, scores, BOS/EOS ids, byte-fallback tokens "<0xHH>"). Only decoding: the demo and the tests turn
// generated ids into text; evaluation data comes pre-tokenised.
#pragma once

#include <cstdint>
#include <cstdio>
#include <filesystem>
#include <iterator>
#include <span>
#include <string>
#include <string_view>
#include <vector>

#include <nlohmann/json.hpp>

#include "tcomp/core/error.hpp"
#include "tcomp/io/safetensors.hpp"
#include "tcomp/io/small_file.hpp"

namespace tcomp::model {

class bpe_tokenizer {
public:
    /// Parses the JSON text; io::file_error naming `origin` and the problem when it is not a llama2c-bpe vocabulary.
    static bpe_tokenizer parse(std::string_view text, const std::string& origin = "tokenizer.json") {
        nlohmann::json j;
        try {
            j = nlohmann::json::parse(text);
        } catch (const nlohmann::json::exception& e) {
            throw io::file_error(origin + ": not valid JSON (" + e.what() + ")");
        }
        auto fail = [&](const std::string& what) -> bpe_tokenizer { throw io::file_error(origin + ": " + what); };
        if (!j.is_object() || j.value("type", std::string{}) != "llama2c-bpe")
            return fail("\"type\" must be \"llama2c-bpe\"");
        if (!j.contains("pieces") || !j["pieces"].is_array()) return fail("\"pieces\" must be an array of strings");
        bpe_tokenizer t;
        for (const auto& p : j["pieces"]) {
            if (!p.is_string()) return fail("\"pieces\" must be an array of strings");
            t.pieces_.push_back(p.get<std::string>());
        }
        auto id_field = [&](const char* key, int fallback) {
            const auto it = j.find(key);
            if (it == j.end()) return fallback;
            if (!it->is_number_integer()) fail(std::string("\"") + key + "\" must be an integer");
            const auto v = it->get<long long>();
            if (v < 0 || v >= static_cast<long long>(t.pieces_.size()))
                fail(std::string("\"") + key + "\" = " + std::to_string(v) + " is not a token id (vocabulary of " +
                     std::to_string(t.pieces_.size()) + ")");
            return static_cast<int>(v);
        };
        t.bos_ = id_field("bos_id", 1);
        t.eos_ = id_field("eos_id", 2);
        return t;
    }

    static bpe_tokenizer load(const std::filesystem::path& path) {
        // 256 MiB: far above any real vocabulary, far below what /dev/zero would cost.
        const std::string text = tcomp::detail::read_small_file(path, std::uint64_t{256} << 20, "tokenizer");
        return parse(text, path.string());
    }

    std::size_t size() const { return pieces_.size(); }
    int bos() const { return bos_; }
    int eos() const { return eos_; }

    /// The text of `ids`: pieces concatenated, "<0xHH>" pieces as that byte, BOS/EOS dropped, and the space
    /// that SentencePiece puts before the first word removed (as llama2.c prints it). tcomp::error for an id
    /// outside the vocabulary.
    std::string decode(std::span<const int> ids) const {
        std::string out;
        bool first = true;
        for (int id : ids) {
            if (id < 0 || static_cast<std::size_t>(id) >= pieces_.size())
                tcomp::detail::throw_error<error>("bpe_tokenizer::decode: token id ", id, " is outside the vocabulary of ",
                                                  pieces_.size());
            if (id == bos_ || id == eos_) continue;
            const std::string& p = pieces_[static_cast<std::size_t>(id)];
            unsigned byte = 0;
            if (p.size() == 6 && p.compare(0, 3, "<0x") == 0 && p[5] == '>' && std::sscanf(p.c_str() + 3, "%2x", &byte) == 1)
                out.push_back(static_cast<char>(byte));
            else
                out += (first && !p.empty() && p[0] == ' ') ? p.substr(1) : p;
            first = false;
        }
        return out;
    }

private:
    std::vector<std::string> pieces_;
    int bos_ = 1, eos_ = 2;
};

}  // namespace tcomp::model
