// Reading a small text file (a config, a recipe, a tokenizer, a shard index) whole, without ever blocking or
// exhausting memory on a path that is not a regular file: the type is checked with stat() before anything opens
// it (opening a FIFO for reading blocks until a writer appears; /dev/zero never ends), and the size is capped.
#pragma once

#include <cstdint>
#include <filesystem>
#include <fstream>
#include <string>
#include <string_view>
#include <system_error>

#include "tcomp/core/error.hpp"

namespace tcomp::io {

/// A file that cannot be read, or whose contents break the format. The message names the file (origin),
/// the tensor where there is one, and the problem.
class file_error : public error {
public:
    using error::error;
};

}  // namespace tcomp::io

namespace tcomp::detail {

/// The bytes of `path`, at most `limit` of them. Error (default io::file_error) "<what> <path>: ..." when the path
/// does not exist, is not a regular file (a directory, FIFO, device or socket), is larger than `limit`, or cannot
/// be read whole.
template <class Error = io::file_error>
std::string read_small_file(const std::filesystem::path& path, std::uint64_t limit, std::string_view what) {
    const std::string where = std::string(what) + (what.empty() ? "" : " ") + path.string();
    std::error_code ec;
    const auto status = std::filesystem::status(path, ec);  // stat(): never blocks, unlike open()
    if (ec || !std::filesystem::exists(status)) throw_error<Error>(where, ": cannot open (no such file)");
    if (!std::filesystem::is_regular_file(status))
        throw_error<Error>(where, ": not a regular file (a directory, FIFO, device or socket)");
    const std::uintmax_t size = std::filesystem::file_size(path, ec);
    if (ec) throw_error<Error>(where, ": cannot read its size: ", ec.message());
    if (size > limit) throw_error<Error>(where, ": ", size, " bytes, more than the ", limit, "-byte limit");
    std::ifstream in(path, std::ios::binary);
    if (!in) throw_error<Error>(where, ": cannot open");
    std::string text(static_cast<std::size_t>(size), '\0');
    in.read(text.data(), static_cast<std::streamsize>(size));
    if (static_cast<std::uintmax_t>(in.gcount()) != size) throw_error<Error>(where, ": short read");
    return text;
}

}  // namespace tcomp::detail
