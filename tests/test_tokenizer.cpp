// model/tokenizer.hpp: decoding ids with a llama2.c BPE vocabulary. On the real stories260K vocabulary
// (skipped visibly without ../shared) the reference greedy ids decode to the reference text; a synthetic
// vocabulary checks byte fallback, BOS/EOS, the leading space, and the errors.
#include <catch2/catch.hpp>

#include "test_support.hpp"

#include <filesystem>
#include <fstream>
#include <vector>

#include <nlohmann/json.hpp>

#include "tcomp/model/tokenizer.hpp"

TEST_CASE("tokenizer: synthetic vocabulary, byte fallback and errors", "[tokenizer]") {
    using tcomp::model::bpe_tokenizer;
    const auto t = bpe_tokenizer::parse(
        R"({"type": "llama2c-bpe", "bos_id": 1, "eos_id": 2, "pieces": ["<unk>", "<s>", "</s>", "<0x41>", "<0x0A>", " Hi", " there", "!"]})");
    CHECK(t.size() == 8);
    const std::vector<int> ids = {1, 5, 6, 7, 4, 3, 2};
    CHECK(t.decode(ids) == "Hi there!\nA");
    const std::vector<int> bad = {5, 8};
    CHECK_THROWS_AS(t.decode(bad), tcomp::error);
    CHECK_THROWS_AS(bpe_tokenizer::parse("{"), tcomp::io::file_error);
    CHECK_THROWS_AS(bpe_tokenizer::parse(R"({"type": "sentencepiece", "pieces": []})"), tcomp::io::file_error);
    CHECK_THROWS_AS(bpe_tokenizer::parse(R"({"type": "llama2c-bpe", "pieces": [1, 2]})"), tcomp::io::file_error);
    CHECK_THROWS_AS(bpe_tokenizer::parse(R"({"type": "llama2c-bpe", "bos_id": 9, "pieces": ["a"]})"), tcomp::io::file_error);
    CHECK_THROWS_AS(bpe_tokenizer::load("/nonexistent/tokenizer.json"), tcomp::io::file_error);
}

TEST_CASE("tokenizer: stories260K greedy ids decode to the reference text", "[tokenizer][stories260K]") {
    if (!tcomp_test::have_models("the stories260K tokenizer check",
                                 {"stories260K/tokenizer.json", "stories260K/reference_greedy.json"}))
        return;
    const auto dir = tcomp_test::models_dir() / "stories260K";
    const auto t = tcomp::model::bpe_tokenizer::load(dir / "tokenizer.json");
    std::ifstream f(dir / "reference_greedy.json");
    const auto j = nlohmann::json::parse(f);
    const auto ids = j.at("greedy_from_bos_ids").get<std::vector<int>>();
    CHECK(t.decode(ids) == j.at("greedy_text").get<std::string>());
    CHECK(t.bos() == 1);
}
