// safetensors files: read (memory-mapped, validated as hostile input), write, and sharded checkpoints.
//
// Layout (huggingface/safetensors): an 8-byte little-endian header length N, N bytes of UTF-8 JSON, then the
// data section. The JSON object maps tensor names to {"dtype", "shape", "data_offsets": [begin, end)} (offsets
// relative to the data section) plus an optional "__metadata__" object of string -> string.
//
// Every number in the header is checked before it is used (docs/design.md, "Files: safetensors"): header
// length <= 100,000,000 bytes (the reference's limit) and inside the file, valid UTF-8, valid JSON, an object,
// no duplicate keys at any level, known dtypes, non-negative integer dimensions, numel * dtype size without
// overflow and equal to end - begin, and offsets that tile the data section exactly (sorted by offset, each
// tensor starting where the previous one ended, the last one ending at the end of the file: no overlap, no
// hole, no trailing bytes), as the reference implementation requires. Any failure throws io::file_error
// naming the origin (file path), the tensor where there is one, and the problem; nothing is read out of bounds.
//
// Lifetime: a tensor_view points into the file's mapping (or into the caller's bytes for from_bytes); it is
// valid while the safetensors_file (or safetensors_set) that produced it lives. Moving the file object keeps
// the views valid. A mapped file truncated by another process while mapped gives SIGBUS (a property of mmap).
//
// Writing (safetensors_writer::write): an exclusively created temporary next to the output, fsync'd, renamed
// over it, the directory fsync'd; an output that is a symbolic link or not a regular file is refused, and no
// temporary survives an error or a SIGINT (see st_write_file).
#pragma once

#include <algorithm>
#include <array>
#include <atomic>
#include <bit>
#include <cerrno>
#include <csignal>
#include <cstddef>
#include <cstdint>
#include <cstring>
#include <filesystem>
#include <fstream>
#include <limits>
#include <map>
#include <memory>
#include <mutex>
#include <optional>
#include <random>
#include <set>
#include <span>
#include <string>
#include <string_view>
#include <system_error>
#include <utility>
#include <vector>

#include <nlohmann/json.hpp>

#include "tcomp/core/error.hpp"
#include "tcomp/io/small_file.hpp"
#include "tcomp/format/fp8.hpp"
#include "tcomp/format/half.hpp"

#if defined(__unix__) || defined(__APPLE__)
#include <fcntl.h>
#include <signal.h>
#include <sys/mman.h>
#include <sys/stat.h>
#include <unistd.h>
#define TCOMP_IO_HAVE_MMAP 1
#else
#define TCOMP_IO_HAVE_MMAP 0
#endif

namespace tcomp::io {

/// Element types, as safetensors spells them: F64 F32 F16 BF16 I64 I32 I16 I8 U64 U32 U16 U8 BOOL F8_E4M3 F8_E5M2.
enum class dtype { f64, f32, f16, bf16, i64, i32, i16, i8, u64, u32, u16, u8, boolean, f8_e4m3, f8_e5m2 };

inline constexpr std::array<dtype, 15> all_dtypes{dtype::f64, dtype::f32,  dtype::f16,     dtype::bf16,
                                                  dtype::i64, dtype::i32,  dtype::i16,     dtype::i8,
                                                  dtype::u64, dtype::u32,  dtype::u16,     dtype::u8,
                                                  dtype::boolean, dtype::f8_e4m3, dtype::f8_e5m2};

inline std::string_view to_string(dtype t) {
    switch (t) {
        case dtype::f64: return "F64";
        case dtype::f32: return "F32";
        case dtype::f16: return "F16";
        case dtype::bf16: return "BF16";
        case dtype::i64: return "I64";
        case dtype::i32: return "I32";
        case dtype::i16: return "I16";
        case dtype::i8: return "I8";
        case dtype::u64: return "U64";
        case dtype::u32: return "U32";
        case dtype::u16: return "U16";
        case dtype::u8: return "U8";
        case dtype::boolean: return "BOOL";
        case dtype::f8_e4m3: return "F8_E4M3";
        case dtype::f8_e5m2: return "F8_E5M2";
    }
    return "?";
}

/// Bytes per element.
inline std::size_t dtype_size(dtype t) {
    switch (t) {
        case dtype::f64:
        case dtype::i64:
        case dtype::u64: return 8;
        case dtype::f32:
        case dtype::i32:
        case dtype::u32: return 4;
        case dtype::f16:
        case dtype::bf16:
        case dtype::i16:
        case dtype::u16: return 2;
        case dtype::i8:
        case dtype::u8:
        case dtype::boolean:
        case dtype::f8_e4m3:
        case dtype::f8_e5m2: return 1;
    }
    return 0;
}

/// The dtype a safetensors name denotes ("F32" -> f32); nullopt for an unknown name.
inline std::optional<dtype> parse_dtype(std::string_view name) {
    for (dtype t : all_dtypes)
        if (to_string(t) == name) return t;
    return std::nullopt;
}

/// One tensor of a file: a view into the mapped file, valid while the file object lives.
struct tensor_view {
    std::string name;
    dtype type = dtype::f32;
    std::vector<std::int64_t> shape;
    std::span<const std::byte> data;

    /// Product of the dimensions (1 for a scalar). Checked against overflow when the file was loaded.
    std::int64_t numel() const {
        std::int64_t n = 1;
        for (std::int64_t d : shape) n *= d;
        return n;
    }
};

}  // namespace tcomp::io

namespace tcomp::detail {

inline constexpr std::uint64_t safetensors_max_header = 100'000'000;  // the reference implementation's limit
inline constexpr int safetensors_max_json_depth = 64;

/// A name for a message: quoted, cut to 160 bytes (on a UTF-8 boundary) so a hostile 100 MB name cannot
/// make a 100 MB message.
inline std::string st_quote(std::string_view s) {
    constexpr std::size_t limit = 160;
    std::string out = "'";
    if (s.size() <= limit) {
        out.append(s);
    } else {
        std::size_t n = limit;
        while (n > 0 && (static_cast<unsigned char>(s[n]) & 0xC0u) == 0x80u) --n;
        out.append(s.substr(0, n));
        out.append("...");
    }
    out += '\'';
    return out;
}

/// Index of the first byte that breaks UTF-8 (overlong forms, surrogates and code points above U+10FFFF
/// included), or nullopt when the text is valid.
inline std::optional<std::size_t> utf8_error_at(std::string_view s) {
    const auto* p = reinterpret_cast<const unsigned char*>(s.data());
    const std::size_t n = s.size();
    std::size_t i = 0;
    while (i < n) {
        const unsigned c = p[i];
        if (c < 0x80u) {
            ++i;
            continue;
        }
        std::size_t len = 0;
        unsigned lo = 0x80u, hi = 0xBFu;  // allowed range of the second byte
        if (c >= 0xC2u && c <= 0xDFu) {
            len = 2;
        } else if (c >= 0xE0u && c <= 0xEFu) {
            len = 3;
            if (c == 0xE0u) lo = 0xA0u;  // overlong
            if (c == 0xEDu) hi = 0x9Fu;  // surrogates
        } else if (c >= 0xF0u && c <= 0xF4u) {
            len = 4;
            if (c == 0xF0u) lo = 0x90u;  // overlong
            if (c == 0xF4u) hi = 0x8Fu;  // above U+10FFFF
        } else {
            return i;
        }
        if (n - i < len) return i;
        if (p[i + 1] < lo || p[i + 1] > hi) return i;
        for (std::size_t k = 2; k < len; ++k)
            if ((p[i + k] & 0xC0u) != 0x80u) return i;
        i += len;
    }
    return std::nullopt;
}

/// A SAX handler for nlohmann::json::sax_parse that builds the json value and rejects what nlohmann accepts
/// silently: duplicate keys (it keeps the last) and nesting deeper than safetensors_max_json_depth.
/// Linear in the text: a key is checked against its own object (a std::map, O(log n) per key). The callback
/// interface of nlohmann::json::parse is not used because it rescans the parent object at every end of an
/// object (to drop discarded values), which made a header of n tensors cost O(n^2) (100,000 tensors: minutes).
class st_json_builder {
public:
    using json = nlohmann::json;
    using number_integer_t = json::number_integer_t;
    using number_unsigned_t = json::number_unsigned_t;
    using number_float_t = json::number_float_t;
    using string_t = json::string_t;
    using binary_t = json::binary_t;

    explicit st_json_builder(const std::string& what) : what_(what) {}

    bool null() { return put(json(nullptr)); }
    bool boolean(bool v) { return put(json(v)); }
    bool number_integer(number_integer_t v) { return put(json(v)); }
    bool number_unsigned(number_unsigned_t v) { return put(json(v)); }
    bool number_float(number_float_t v, const string_t&) { return put(json(v)); }
    bool string(string_t& v) { return put(json(std::move(v))); }
    bool binary(binary_t& v) { return put(json::binary(std::move(v))); }

    bool start_object(std::size_t) { return open(json::object()); }
    bool start_array(std::size_t) { return open(json::array()); }
    bool end_object() { return close(); }
    bool end_array() { return close(); }

    bool key(string_t& k) {
        auto& object = *stack_.back()->get_ptr<json::object_t*>();
        const auto [it, inserted] = object.emplace(k, json());
        if (!inserted) {
            if (stack_.size() == 1)
                throw_error<io::file_error>(what_, ": duplicate name ", st_quote(k),
                                            " (the key appears twice in the header)");
            throw_error<io::file_error>(what_, ": duplicate key ", st_quote(k), " inside an object");
        }
        member_ = &it->second;
        return true;
    }

    bool parse_error(std::size_t, const std::string&, const nlohmann::detail::exception& e) {
        throw_error<io::file_error>(what_, ": not valid JSON: ", e.what());
    }

    json& result() { return root_; }

private:
    /// Stores a value in the open array or object (at the last key), or as the root; returns where it is.
    json* place(json&& v) {
        if (stack_.empty()) {
            root_ = std::move(v);
            return &root_;
        }
        json& parent = *stack_.back();
        if (parent.is_array()) {
            parent.get_ptr<json::array_t*>()->push_back(std::move(v));
            return &parent.get_ptr<json::array_t*>()->back();
        }
        *member_ = std::move(v);
        return member_;
    }
    bool put(json&& v) {
        place(std::move(v));
        return true;
    }
    bool open(json&& container) {
        if (static_cast<int>(stack_.size()) >= safetensors_max_json_depth)
            throw_error<io::file_error>(what_, ": JSON nested deeper than ", safetensors_max_json_depth, " levels");
        stack_.push_back(place(std::move(container)));
        return true;
    }
    bool close() {
        stack_.pop_back();
        return true;
    }

    const std::string& what_;
    json root_;
    std::vector<json*> stack_;  // the open arrays and objects, innermost last
    json* member_ = nullptr;    // the value slot of the last key of the innermost object
};

/// Parses JSON text (already checked to be UTF-8) in linear time and rejects what nlohmann accepts silently:
/// duplicate keys (it keeps the last) and nesting deeper than safetensors_max_json_depth. `what` names the
/// text in messages.
inline nlohmann::json st_parse_json(std::string_view text, const std::string& what) {
    // nlohmann's lexer takes a NUL byte for the end of the input and would ignore whatever follows it; JSON
    // text has no raw NUL anywhere (a string spells it \u0000).
    if (const auto nul = text.find('\0'); nul != std::string_view::npos)
        throw_error<io::file_error>(what, ": not valid JSON: a NUL byte at byte ", nul);
    st_json_builder builder(what);
    try {
        if (!nlohmann::json::sax_parse(text.begin(), text.end(), &builder))
            throw_error<io::file_error>(what, ": not valid JSON");
    } catch (const nlohmann::json::exception& e) {
        throw_error<io::file_error>(what, ": not valid JSON: ", e.what());
    }
    return std::move(builder.result());
}

inline std::uint64_t load_le_u64(const std::byte* p) {
    std::uint64_t v = 0;
    for (int i = 7; i >= 0; --i) v = (v << 8) | std::to_integer<std::uint64_t>(p[i]);
    return v;
}

template <class U>
inline U load_le(const std::byte* p) {
    U v = 0;
    for (int i = static_cast<int>(sizeof(U)) - 1; i >= 0; --i)
        v = static_cast<U>((v << 8) | std::to_integer<U>(p[i]));
    return v;
}

template <class U>
inline void store_le(std::byte* p, U v) {
    for (std::size_t i = 0; i < sizeof(U); ++i) p[i] = static_cast<std::byte>((v >> (8 * i)) & 0xFFu);
}

inline std::string st_shape_string(const std::vector<std::int64_t>& shape) {
    std::string s = "[";
    for (std::size_t i = 0; i < shape.size(); ++i) {
        if (i) s += ", ";
        s += std::to_string(shape[i]);
    }
    return s + "]";
}

/// numel * element size, nullopt on overflow of int64 (numel) or of the byte count.
inline std::optional<std::uint64_t> st_byte_size(const std::vector<std::int64_t>& shape, std::size_t elem) {
    std::uint64_t n = 1;
    constexpr auto max = static_cast<std::uint64_t>(std::numeric_limits<std::int64_t>::max());
    for (std::int64_t d : shape) {
        if (d < 0) return std::nullopt;
        const auto u = static_cast<std::uint64_t>(d);
        if (u != 0 && n > max / u) return std::nullopt;
        n *= u;
    }
    if (elem != 0 && n > max / elem) return std::nullopt;
    return n * elem;
}

/// A read-only private mapping of a whole file (or, where there is no mmap, a copy). Move-only.
class st_mapping {
public:
    st_mapping() = default;
    st_mapping(const st_mapping&) = delete;
    st_mapping& operator=(const st_mapping&) = delete;
    ~st_mapping() { release(); }

    static std::unique_ptr<st_mapping> map(const std::filesystem::path& path) {
        auto m = std::make_unique<st_mapping>();
        const std::string name = path.string();
#if TCOMP_IO_HAVE_MMAP
        // O_NONBLOCK: opening a FIFO must not wait for a writer (fstat below rejects it); no effect on regular files.
        const int fd = ::open(name.c_str(), O_RDONLY | O_CLOEXEC | O_NONBLOCK);
        if (fd < 0)
            throw_error<io::file_error>("safetensors: ", name, ": cannot open: ",
                                        std::generic_category().message(errno));
        struct stat st {};
        if (::fstat(fd, &st) != 0 || !S_ISREG(st.st_mode)) {
            ::close(fd);
            throw_error<io::file_error>("safetensors: ", name, ": not a regular file");
        }
        m->size_ = static_cast<std::size_t>(st.st_size);
        if (m->size_ > 0) {
            void* p = ::mmap(nullptr, m->size_, PROT_READ, MAP_PRIVATE, fd, 0);
            if (p == MAP_FAILED) {
                const int err = errno;
                ::close(fd);
                throw_error<io::file_error>("safetensors: ", name, ": mmap failed: ",
                                            std::generic_category().message(err));
            }
            m->addr_ = p;
        }
        ::close(fd);
#else
        std::ifstream in(path, std::ios::binary | std::ios::ate);
        if (!in) throw_error<io::file_error>("safetensors: ", name, ": cannot open");
        const auto end = in.tellg();
        in.seekg(0);
        m->copy_.resize(static_cast<std::size_t>(end));
        if (!in.read(reinterpret_cast<char*>(m->copy_.data()), static_cast<std::streamsize>(m->copy_.size())))
            throw_error<io::file_error>("safetensors: ", name, ": read failed");
        m->size_ = m->copy_.size();
#endif
        return m;
    }

    std::span<const std::byte> bytes() const {
#if TCOMP_IO_HAVE_MMAP
        return {static_cast<const std::byte*>(addr_), size_};
#else
        return {copy_.data(), size_};
#endif
    }

private:
    void release() {
#if TCOMP_IO_HAVE_MMAP
        if (addr_) ::munmap(addr_, size_);
        addr_ = nullptr;
#endif
    }
    std::size_t size_ = 0;
#if TCOMP_IO_HAVE_MMAP
    void* addr_ = nullptr;
#else
    std::vector<std::byte> copy_;
#endif
};

#if TCOMP_IO_HAVE_MMAP
// Writing a file safely (issue 16): the writer writes a temporary in OUT's directory, created exclusively
// (O_CREAT | O_EXCL | O_NOFOLLOW, a random name: nothing planted at that name is opened or followed), fsyncs
// it, renames it over OUT and fsyncs the directory. OUT itself must be absent or a regular file: a symbolic
// link, a directory, a device, a FIFO or a socket is refused (renaming over a link replaces the link, not
// its target, which is never what was meant; renaming over /dev/null replaces the device node). While a write
// is in flight, a SIGINT handler unlinks the live temporaries and re-raises the signal with the previous
// disposition restored: the registry below is fixed static storage read with lock-free atomics, so the
// handler calls only async-signal-safe functions (unlink, sigaction, raise).

inline constexpr int st_temp_slots = 32;
inline constexpr std::size_t st_temp_path_max = 4096;
static_assert(std::atomic<int>::is_always_lock_free);
/// Per slot: 0 free, 1 being filled, 2 live (the handler may unlink it), 3 taken by the handler.
inline std::atomic<int> st_temp_state[st_temp_slots];
inline char st_temp_path[st_temp_slots][st_temp_path_max];
inline struct sigaction st_sigint_previous;
inline std::mutex st_sigint_mutex;
inline int st_sigint_users = 0;
inline bool st_sigint_installed = false;

/// The SIGINT handler while writes are in flight: unlinks every live temporary, restores the previous
/// disposition and raises the signal again (it is delivered to that disposition when this handler returns,
/// SIGINT being blocked while it runs).
inline void st_sigint_handler(int sig) {
    const int saved_errno = errno;
    for (int i = 0; i < st_temp_slots; ++i) {
        int live = 2;
        if (st_temp_state[i].compare_exchange_strong(live, 3)) ::unlink(st_temp_path[i]);
    }
    ::sigaction(SIGINT, &st_sigint_previous, nullptr);
    ::raise(sig);
    errno = saved_errno;
}

/// Installs st_sigint_handler while at least one guard lives (not when SIGINT is ignored), and restores the
/// previous disposition when the last one goes (unless someone else has replaced the handler meanwhile).
class st_sigint_guard {
public:
    st_sigint_guard() {
        const std::lock_guard<std::mutex> lock(st_sigint_mutex);
        if (st_sigint_users++ != 0) return;
        struct sigaction current {};
        if (::sigaction(SIGINT, nullptr, &current) != 0) return;
        if (!(current.sa_flags & SA_SIGINFO) && current.sa_handler == SIG_IGN) return;  // nothing to clean up
        st_sigint_previous = current;
        struct sigaction ours {};
        ours.sa_handler = &st_sigint_handler;
        sigemptyset(&ours.sa_mask);
        ours.sa_flags = SA_RESTART;
        st_sigint_installed = ::sigaction(SIGINT, &ours, nullptr) == 0;
    }
    ~st_sigint_guard() {
        const std::lock_guard<std::mutex> lock(st_sigint_mutex);
        if (--st_sigint_users != 0 || !st_sigint_installed) return;
        st_sigint_installed = false;
        struct sigaction current {};
        if (::sigaction(SIGINT, nullptr, &current) == 0 && !(current.sa_flags & SA_SIGINFO) &&
            current.sa_handler == &st_sigint_handler)
            ::sigaction(SIGINT, &st_sigint_previous, nullptr);
    }
    st_sigint_guard(const st_sigint_guard&) = delete;
    st_sigint_guard& operator=(const st_sigint_guard&) = delete;
};

/// Blocks SIGINT in this thread for its lifetime (so that creating or removing a temporary and (un)registering
/// it happen together as far as this thread's handler is concerned).
class st_sigint_block {
public:
    st_sigint_block() {
        sigset_t set;
        sigemptyset(&set);
        sigaddset(&set, SIGINT);
        ok_ = ::pthread_sigmask(SIG_BLOCK, &set, &old_) == 0;
    }
    ~st_sigint_block() {
        if (ok_) ::pthread_sigmask(SIG_SETMASK, &old_, nullptr);
    }
    st_sigint_block(const st_sigint_block&) = delete;
    st_sigint_block& operator=(const st_sigint_block&) = delete;

private:
    sigset_t old_{};
    bool ok_ = false;
};

/// Puts `path` in the registry; the slot, or -1 when the path is too long or all slots are busy (that write
/// is then not cleaned up on SIGINT; it still is on every error).
inline int st_temp_register(const std::string& path) {
    if (path.size() >= st_temp_path_max) return -1;
    for (int i = 0; i < st_temp_slots; ++i) {
        int free_slot = 0;
        if (st_temp_state[i].compare_exchange_strong(free_slot, 1)) {
            std::memcpy(st_temp_path[i], path.c_str(), path.size() + 1);
            st_temp_state[i].store(2);
            return i;
        }
    }
    return -1;
}

/// Takes `slot` out of the registry: true when it was still live; false when the SIGINT handler took it
/// (the file is gone; the slot stays taken, as the handler may still be reading the name).
inline bool st_temp_release(int slot) {
    if (slot < 0) return true;
    int live = 2;
    return st_temp_state[slot].compare_exchange_strong(live, 0);
}

inline std::string st_errno_text(int err) { return std::generic_category().message(err); }

/// "a directory", "a character device", ... for messages.
inline const char* st_file_kind(mode_t mode) {
    if (S_ISDIR(mode)) return "a directory";
    if (S_ISCHR(mode)) return "a character device";
    if (S_ISBLK(mode)) return "a block device";
    if (S_ISFIFO(mode)) return "a FIFO";
    if (S_ISSOCK(mode)) return "a socket";
    if (S_ISLNK(mode)) return "a symbolic link";
    return "not a regular file";
}

/// An exclusively created temporary next to OUT; on destruction (any error path) it is closed and unlinked
/// unless rename_over() has moved it to OUT.
class st_temp_file {
public:
    /// `mode`: the permission bits to create with (the umask applies).
    st_temp_file(const std::string& out, mode_t mode) : out_(out) {
        std::random_device rd;
        for (int attempt = 0; attempt < 100; ++attempt) {
            const std::uint64_t r = (static_cast<std::uint64_t>(rd()) << 32) ^ rd();
            static constexpr char hex[] = "0123456789abcdef";
            std::string name = out + ".tmp-";
            for (int k = 0; k < 12; ++k) name += hex[(r >> (4 * k)) & 0xFu];
            const st_sigint_block block;
            const int fd = ::open(name.c_str(), O_WRONLY | O_CREAT | O_EXCL | O_NOFOLLOW | O_CLOEXEC, mode);
            if (fd >= 0) {
                fd_ = fd;
                path_ = std::move(name);
                slot_ = st_temp_register(path_);
                return;
            }
            const int err = errno;
            if (err != EEXIST)
                throw_error<io::file_error>("safetensors_writer: ", out, ": cannot create a temporary file ", name,
                                            ": ", st_errno_text(err));
        }
        throw_error<io::file_error>("safetensors_writer: ", out,
                                    ": cannot create a temporary file: 100 random names were all taken");
    }
    ~st_temp_file() {
        if (fd_ >= 0) ::close(fd_);
        if (path_.empty()) return;
        const st_sigint_block block;
        if (st_temp_release(slot_)) ::unlink(path_.c_str());
    }
    st_temp_file(const st_temp_file&) = delete;
    st_temp_file& operator=(const st_temp_file&) = delete;

    const std::string& path() const { return path_; }

    void write(std::span<const std::byte> bytes) {
        const std::byte* p = bytes.data();
        std::size_t left = bytes.size();
        while (left > 0) {
            const ::ssize_t n = ::write(fd_, p, std::min<std::size_t>(left, std::size_t{1} << 30));
            if (n < 0 && errno == EINTR) continue;
            if (n <= 0) fail("write failed", n < 0 ? errno : EIO);
            p += n;
            left -= static_cast<std::size_t>(n);
        }
    }

    /// Sets the permission bits (those of the file being replaced), fsyncs and closes the file, renames it
    /// over OUT and fsyncs the directory.
    void rename_over(std::optional<mode_t> mode) {
        if (mode && ::fchmod(fd_, *mode) != 0) fail("chmod failed", errno);
        while (::fsync(fd_) != 0)
            if (errno != EINTR) fail("fsync failed", errno);
        const int fd = fd_;
        fd_ = -1;
        if (::close(fd) != 0 && errno != EINTR) fail("close failed", errno);
        {
            const st_sigint_block block;
            if (::rename(path_.c_str(), out_.c_str()) != 0) {
                const int err = errno;
                throw_error<io::file_error>("safetensors_writer: ", out_, ": cannot rename the temporary file ",
                                            path_, " over it: ", st_errno_text(err));
            }
            st_temp_release(slot_);
            path_.clear();  // nothing left to remove
        }
        // The rename is durable once the directory is: fsync it (EINVAL: a file system that cannot).
        const std::filesystem::path parent = std::filesystem::path(out_).parent_path();
        const std::string dir = parent.empty() ? std::string(".") : parent.string();
        const int dfd = ::open(dir.c_str(), O_RDONLY | O_DIRECTORY | O_CLOEXEC);
        if (dfd < 0) {
            const int err = errno;
            throw_error<io::file_error>("safetensors_writer: ", out_, ": written, but cannot open its directory ",
                                        dir, " to fsync it: ", st_errno_text(err));
        }
        int err = 0;
        while (::fsync(dfd) != 0) {
            if (errno == EINTR) continue;
            if (errno != EINVAL) err = errno;
            break;
        }
        ::close(dfd);
        if (err != 0)
            throw_error<io::file_error>("safetensors_writer: ", out_, ": written, but fsync of its directory ", dir,
                                        " failed: ", st_errno_text(err));
    }

private:
    [[noreturn]] void fail(const char* what, int err) const {
        throw_error<io::file_error>("safetensors_writer: ", out_, ": ", what, " (temporary file ", path_,
                                    "): ", st_errno_text(err));
    }

    std::string out_;
    std::string path_;  // empty once renamed
    int fd_ = -1;
    int slot_ = -1;
};

/// Writes `chunks`, in order, to `out` through a temporary and a rename (see above). Throws io::file_error
/// naming `out` and the problem; no temporary is left behind on any error, nor on SIGINT.
inline void st_write_file(const std::filesystem::path& out, std::span<const std::span<const std::byte>> chunks) {
    const std::string name = out.string();
    std::optional<mode_t> keep_mode;  // the permission bits of the file being replaced
    struct stat st {};
    if (::lstat(name.c_str(), &st) == 0) {
        if (S_ISLNK(st.st_mode))
            throw_error<io::file_error>("safetensors_writer: ", name,
                                        ": is a symbolic link; refusing to replace it (write to the path it "
                                        "points to instead)");
        if (!S_ISREG(st.st_mode))
            throw_error<io::file_error>("safetensors_writer: ", name, ": exists and is not a regular file (it is ",
                                        st_file_kind(st.st_mode), "); refusing to replace it");
        keep_mode = st.st_mode & 0777;
    } else if (const int err = errno; err != ENOENT) {
        throw_error<io::file_error>("safetensors_writer: ", name, ": cannot stat: ", st_errno_text(err));
    }
    const st_sigint_guard sigint;
    // A file being replaced keeps its permissions; its new contents are written 0600 until then.
    st_temp_file tmp(name, keep_mode ? mode_t{0600} : mode_t{0666});
    for (const auto& chunk : chunks) tmp.write(chunk);
    tmp.rename_over(keep_mode);
}
#else
/// ".tmp-<n>": unique per call, for write-then-rename where there is no POSIX API.
inline std::string st_temp_suffix() {
    static std::atomic<unsigned> counter{0};
    return ".tmp-" + std::to_string(counter.fetch_add(1));
}
#endif

}  // namespace tcomp::detail

namespace tcomp::io {

/// A parsed safetensors file: the header validated, the data mapped (open) or borrowed (from_bytes).
class safetensors_file {
public:
    safetensors_file(const safetensors_file&) = delete;
    safetensors_file& operator=(const safetensors_file&) = delete;
    safetensors_file(safetensors_file&&) noexcept = default;
    safetensors_file& operator=(safetensors_file&&) noexcept = default;
    ~safetensors_file() = default;

    /// Maps the file read-only (MAP_PRIVATE) and validates its header; the data is not copied.
    static safetensors_file open(const std::filesystem::path& path) {
        auto mapping = detail::st_mapping::map(path);
        const auto bytes = mapping->bytes();
        safetensors_file f = from_bytes(bytes, path.string());
        f.mapping_ = std::move(mapping);
        return f;
    }

    /// Validates `bytes` as a safetensors file without copying them: the caller keeps them alive while
    /// this object (and its views) are used. `origin` names the bytes in messages.
    static safetensors_file from_bytes(std::span<const std::byte> bytes, std::string origin = "<memory>") {
        safetensors_file f;
        f.origin_ = std::move(origin);
        f.bytes_ = bytes;
        f.parse();
        return f;
    }

    bool contains(std::string_view name) const { return index_.find(name) != index_.end(); }

    /// The tensor called `name`; throws file_error naming the file and the tensor when there is none.
    const tensor_view& tensor(std::string_view name) const {
        const auto it = index_.find(name);
        if (it == index_.end())
            detail::throw_error<file_error>("safetensors: ", origin_, ": no tensor ", detail::st_quote(name),
                                            " (the file has ", tensors_.size(), " tensors)");
        return tensors_[it->second];
    }

    /// Every tensor, in file order (by data offset).
    const std::vector<tensor_view>& tensors() const { return tensors_; }
    /// The "__metadata__" object (string -> string); empty when the file has none.
    const std::map<std::string, std::string>& metadata() const { return metadata_; }
    /// The path given to open(), or the origin given to from_bytes().
    const std::string& origin() const { return origin_; }
    /// The whole file.
    std::span<const std::byte> bytes() const { return bytes_; }
    /// Byte offset of the data section in the file (8 + header length).
    std::size_t data_offset() const { return data_offset_; }

private:
    safetensors_file() = default;

    template <class... Parts>
    [[noreturn]] void fail(Parts&&... parts) const {
        detail::throw_error<file_error>("safetensors: ", origin_, ": ", std::forward<Parts>(parts)...);
    }
    template <class... Parts>
    [[noreturn]] void fail_tensor(std::string_view name, Parts&&... parts) const {
        detail::throw_error<file_error>("safetensors: ", origin_, ": tensor ", detail::st_quote(name), ": ",
                                        std::forward<Parts>(parts)...);
    }

    /// A JSON non-negative integer (`-0` included), nullopt for anything else.
    static std::optional<std::uint64_t> as_uint(const nlohmann::json& j) {
        if (j.is_number_unsigned()) return j.get<std::uint64_t>();
        if (j.is_number_integer() && j.get<std::int64_t>() == 0) return 0;
        return std::nullopt;
    }

    void parse() {
        const std::size_t size = bytes_.size();
        if (size < 8) fail("file is ", size, " bytes, shorter than the 8-byte header length (truncated?)");
        const std::uint64_t n = detail::load_le_u64(bytes_.data());
        if (n > detail::safetensors_max_header)
            fail("header length ", n, " is too large (limit ", detail::safetensors_max_header, " bytes)");
        if (n > size - 8)
            fail("header length ", n, " goes beyond the end of the file (", size - 8,
                 " bytes follow the length; truncated?)");
        const auto header_len = static_cast<std::size_t>(n);
        data_offset_ = 8 + header_len;
        const std::string_view text(reinterpret_cast<const char*>(bytes_.data() + 8), header_len);
        if (const auto bad = detail::utf8_error_at(text))
            fail("header is not valid UTF-8 (byte ", *bad, " of the header)");
        const nlohmann::json header = detail::st_parse_json(text, "safetensors: " + origin_ + ": header");
        if (!header.is_object()) fail("header is not a JSON object (it is a JSON ", header.type_name(), ")");

        const std::uint64_t data_size = size - data_offset_;
        const std::byte* data = bytes_.data() + data_offset_;
        struct entry {
            std::uint64_t begin, end;
            std::size_t index;
        };
        std::vector<entry> ranges;
        std::vector<tensor_view> views;
        views.reserve(header.size());
        for (const auto& [name, value] : header.items()) {
            if (name == "__metadata__") {
                if (!value.is_object()) fail("\"__metadata__\" is not a JSON object (it is a ", value.type_name(), ")");
                for (const auto& [k, v] : value.items()) {
                    if (!v.is_string())
                        fail("\"__metadata__\" value of key ", detail::st_quote(k), " is not a string (it is a ",
                             v.type_name(), ")");
                    metadata_.emplace(k, v.get<std::string>());
                }
                continue;
            }
            if (!value.is_object()) fail_tensor(name, "entry is not a JSON object (it is a ", value.type_name(), ")");
            for (const auto& [k, v] : value.items()) {
                (void)v;
                if (k != "dtype" && k != "shape" && k != "data_offsets")
                    fail_tensor(name, "unknown key ", detail::st_quote(k),
                                " (expected \"dtype\", \"shape\", \"data_offsets\")");
            }
            const auto dt = value.find("dtype");
            const auto sh = value.find("shape");
            const auto off = value.find("data_offsets");
            if (dt == value.end()) fail_tensor(name, "missing \"dtype\"");
            if (sh == value.end()) fail_tensor(name, "missing \"shape\"");
            if (off == value.end()) fail_tensor(name, "missing \"data_offsets\"");
            if (!dt->is_string()) fail_tensor(name, "\"dtype\" is not a string (it is a ", dt->type_name(), ")");
            const auto type = parse_dtype(dt->get_ref<const std::string&>());
            if (!type) fail_tensor(name, "unknown dtype ", detail::st_quote(dt->get_ref<const std::string&>()));
            if (!sh->is_array()) fail_tensor(name, "\"shape\" is not an array (it is a ", sh->type_name(), ")");
            std::vector<std::int64_t> shape;
            shape.reserve(sh->size());
            for (const auto& d : *sh) {
                const auto u = as_uint(d);
                if (!u && d.is_number_integer())
                    fail_tensor(name, "negative dimension ", d.get<std::int64_t>(), " in \"shape\"");
                if (!u)
                    fail_tensor(name, "dimension ", d.dump().substr(0, 40),
                                " in \"shape\" is not a non-negative integer");
                if (*u > static_cast<std::uint64_t>(std::numeric_limits<std::int64_t>::max()))
                    fail_tensor(name, "dimension ", *u, " in \"shape\" overflows int64");
                shape.push_back(static_cast<std::int64_t>(*u));
            }
            const auto bytes_needed = detail::st_byte_size(shape, dtype_size(*type));
            if (!bytes_needed)
                fail_tensor(name, "shape ", detail::st_shape_string(shape), " overflows: numel * ",
                            dtype_size(*type), " bytes does not fit in 63 bits");
            const bool pair = off->is_array() && off->size() == 2;
            const auto b0 = pair ? as_uint((*off)[0]) : std::nullopt;
            const auto e0 = pair ? as_uint((*off)[1]) : std::nullopt;
            if (!b0 || !e0)
                fail_tensor(name, "\"data_offsets\" must be [begin, end] with non-negative integers, not ",
                            off->dump().substr(0, 120));
            const std::uint64_t begin = *b0, end = *e0;
            if (begin > end) fail_tensor(name, "data_offsets [", begin, ", ", end, "] are reversed (begin > end)");
            if (end > data_size)
                fail_tensor(name, "data_offsets [", begin, ", ", end, "] are out of range: the data section has ",
                            data_size, " bytes");
            if (end - begin != *bytes_needed)
                fail_tensor(name, "data_offsets [", begin, ", ", end, "] hold ", end - begin, " bytes but shape ",
                            detail::st_shape_string(shape), " of ", to_string(*type), " needs ", *bytes_needed,
                            " bytes (size mismatch)");
            ranges.push_back({begin, end, views.size()});
            tensor_view v;
            v.name = name;
            v.type = *type;
            v.shape = std::move(shape);
            v.data = std::span<const std::byte>(data + begin, static_cast<std::size_t>(end - begin));
            views.push_back(std::move(v));
        }

        // The spec: the byte buffer is fully indexed, no holes, no overlap (sorted by offset, each tensor
        // starts where the previous one ended, the last one ends at the end of the file).
        std::sort(ranges.begin(), ranges.end(), [&](const entry& a, const entry& b) {
            if (a.begin != b.begin) return a.begin < b.begin;
            if (a.end != b.end) return a.end < b.end;
            return views[a.index].name < views[b.index].name;  // empty tensors sharing an offset
        });
        std::uint64_t expected = 0;
        const tensor_view* previous = nullptr;
        for (const entry& r : ranges) {
            const tensor_view& v = views[r.index];
            if (r.begin < expected)
                fail_tensor(v.name, "data_offsets [", r.begin, ", ", r.end, "] overlap tensor ",
                            detail::st_quote(previous->name), " (which ends at ", expected, ")");
            if (r.begin > expected)
                fail_tensor(v.name, "data_offsets [", r.begin, ", ", r.end, "] leave a gap: bytes [", expected, ", ",
                            r.begin, ") of the data section belong to no tensor");
            expected = r.end;
            previous = &v;
        }
        if (expected != data_size)
            fail("bytes [", expected, ", ", data_size,
                 ") at the end of the data section belong to no tensor (trailing data or a gap)");

        tensors_.reserve(views.size());
        for (const entry& r : ranges) tensors_.push_back(std::move(views[r.index]));
        for (std::size_t i = 0; i < tensors_.size(); ++i) index_.emplace(tensors_[i].name, i);
    }

    std::string origin_;
    std::span<const std::byte> bytes_;
    std::size_t data_offset_ = 0;
    std::unique_ptr<detail::st_mapping> mapping_;  // null for from_bytes
    std::vector<tensor_view> tensors_;
    std::map<std::string, std::size_t, std::less<>> index_;
    std::map<std::string, std::string> metadata_;
};

/// Widens every element of `t` to float into `out` (out.size() == numel). Reads with byte loads, so
/// unaligned data is fine. F64/I64/U64/I32/U32 round to the nearest float; BOOL gives 0 or 1.
inline void to_float(const tensor_view& t, std::span<float> out) {
    const auto need = detail::st_byte_size(t.shape, dtype_size(t.type));
    const std::size_t n = t.data.size() / std::max<std::size_t>(1, dtype_size(t.type));
    if (!need || *need != t.data.size())
        detail::throw_error<shape_error>("to_float: tensor ", detail::st_quote(t.name), ": ", t.data.size(),
                                         " bytes do not hold shape ", detail::st_shape_string(t.shape), " of ",
                                         to_string(t.type));
    if (out.size() != n)
        detail::throw_error<shape_error>("to_float: tensor ", detail::st_quote(t.name), ": output has ", out.size(),
                                         " elements, the tensor ", n);
    const std::byte* p = t.data.data();
    using detail::load_le;
    switch (t.type) {
        case dtype::f64:
            for (std::size_t i = 0; i < n; ++i)
                out[i] = static_cast<float>(std::bit_cast<double>(load_le<std::uint64_t>(p + 8 * i)));
            return;
        case dtype::f32:
            for (std::size_t i = 0; i < n; ++i) out[i] = std::bit_cast<float>(load_le<std::uint32_t>(p + 4 * i));
            return;
        case dtype::f16:
            for (std::size_t i = 0; i < n; ++i) out[i] = fp16_format::decode(load_le<std::uint16_t>(p + 2 * i));
            return;
        case dtype::bf16:
            for (std::size_t i = 0; i < n; ++i) out[i] = bf16_format::decode(load_le<std::uint16_t>(p + 2 * i));
            return;
        case dtype::i64:
            for (std::size_t i = 0; i < n; ++i)
                out[i] = static_cast<float>(static_cast<std::int64_t>(load_le<std::uint64_t>(p + 8 * i)));
            return;
        case dtype::i32:
            for (std::size_t i = 0; i < n; ++i)
                out[i] = static_cast<float>(static_cast<std::int32_t>(load_le<std::uint32_t>(p + 4 * i)));
            return;
        case dtype::i16:
            for (std::size_t i = 0; i < n; ++i)
                out[i] = static_cast<float>(static_cast<std::int16_t>(load_le<std::uint16_t>(p + 2 * i)));
            return;
        case dtype::i8:
            for (std::size_t i = 0; i < n; ++i)
                out[i] = static_cast<float>(static_cast<std::int8_t>(std::to_integer<std::uint8_t>(p[i])));
            return;
        case dtype::u64:
            for (std::size_t i = 0; i < n; ++i) out[i] = static_cast<float>(load_le<std::uint64_t>(p + 8 * i));
            return;
        case dtype::u32:
            for (std::size_t i = 0; i < n; ++i) out[i] = static_cast<float>(load_le<std::uint32_t>(p + 4 * i));
            return;
        case dtype::u16:
            for (std::size_t i = 0; i < n; ++i) out[i] = static_cast<float>(load_le<std::uint16_t>(p + 2 * i));
            return;
        case dtype::u8:
            for (std::size_t i = 0; i < n; ++i) out[i] = static_cast<float>(std::to_integer<std::uint8_t>(p[i]));
            return;
        case dtype::boolean:
            for (std::size_t i = 0; i < n; ++i) out[i] = std::to_integer<std::uint8_t>(p[i]) != 0 ? 1.0f : 0.0f;
            return;
        case dtype::f8_e4m3:
            for (std::size_t i = 0; i < n; ++i) out[i] = fp8_e4m3::decode(std::to_integer<std::uint8_t>(p[i]));
            return;
        case dtype::f8_e5m2:
            for (std::size_t i = 0; i < n; ++i) out[i] = fp8_e5m2::decode(std::to_integer<std::uint8_t>(p[i]));
            return;
    }
    detail::throw_error<value_error>("to_float: tensor ", detail::st_quote(t.name), ": unsupported dtype ",
                                     static_cast<int>(t.type));
}

/// Every element of `t` widened to float (see the overload above).
inline std::vector<float> to_float(const tensor_view& t) {
    const auto need = detail::st_byte_size(t.shape, dtype_size(t.type));
    if (!need || *need != t.data.size())
        detail::throw_error<shape_error>("to_float: tensor ", detail::st_quote(t.name), ": ", t.data.size(),
                                         " bytes do not hold shape ", detail::st_shape_string(t.shape), " of ",
                                         to_string(t.type));
    std::vector<float> out(t.data.size() / std::max<std::size_t>(1, dtype_size(t.type)));
    to_float(t, out);
    return out;
}

/// Builds a safetensors file: tensors are copied in on add(), written by to_bytes() or write().
/// Layout: the header is padded with spaces to a multiple of 8 bytes, so the data section starts 8-aligned;
/// tensors are laid out by decreasing element size (stable: insertion order within one size), so every tensor
/// starts at a multiple of its element size with no padding between tensors (the format allows none).
class safetensors_writer {
public:
    /// Copies `data`. Throws value_error for a duplicate or reserved name or non-UTF-8 text, shape_error when
    /// data.size() != numel * dtype_size(type) or a dimension is negative.
    void add(std::string name, dtype type, std::vector<std::int64_t> shape, std::span<const std::byte> data) {
        check_text(name, "tensor name");
        if (name == "__metadata__")
            detail::throw_error<value_error>("safetensors_writer: \"__metadata__\" is reserved, not a tensor name");
        if (names_.count(name))
            detail::throw_error<value_error>("safetensors_writer: duplicate tensor name ", detail::st_quote(name));
        const auto need = detail::st_byte_size(shape, dtype_size(type));
        if (!need)
            detail::throw_error<shape_error>("safetensors_writer: tensor ", detail::st_quote(name), ": shape ",
                                             detail::st_shape_string(shape), " is negative or overflows");
        if (*need != data.size())
            detail::throw_error<shape_error>("safetensors_writer: tensor ", detail::st_quote(name), ": shape ",
                                             detail::st_shape_string(shape), " of ", to_string(type), " needs ",
                                             *need, " bytes, got ", data.size());
        names_.insert(name);
        entries_.push_back({std::move(name), type, std::move(shape), {data.begin(), data.end()}});
    }

    /// F32 from floats (stored little-endian whatever the host).
    void add_f32(std::string name, std::vector<std::int64_t> shape, std::span<const float> data) {
        std::vector<std::byte> bytes(data.size() * 4);
        for (std::size_t i = 0; i < data.size(); ++i)
            detail::store_le(bytes.data() + 4 * i, std::bit_cast<std::uint32_t>(data[i]));
        add(std::move(name), dtype::f32, std::move(shape), bytes);
    }

    /// A copy of a tensor of another file.
    void add(const tensor_view& t) { add(t.name, t.type, t.shape, t.data); }

    /// One "__metadata__" entry (replaces an earlier value of the same key).
    void set_metadata(std::string key, std::string value) {
        check_text(key, "metadata key");
        check_text(value, "metadata value");
        metadata_[std::move(key)] = std::move(value);
    }

    std::size_t size() const { return entries_.size(); }

    /// The whole file in memory.
    std::vector<std::byte> to_bytes() const {
        const auto order = layout();
        std::vector<std::byte> out = header_bytes(order);
        std::size_t total = out.size();
        for (std::size_t i : order) total += entries_[i].data.size();
        out.reserve(total);
        for (std::size_t i : order) out.insert(out.end(), entries_[i].data.begin(), entries_[i].data.end());
        return out;
    }

    /// Writes the file to `path` atomically and durably: to an exclusively created temporary in the same
    /// directory (`<path>.tmp-<random>`), fsync'd, then renamed over `path` (a reader never sees a
    /// half-written file), then the directory fsync'd. `path` must not exist or be a regular file (a replaced
    /// file keeps its permission bits): a symbolic link, directory, device, FIFO or socket is refused with
    /// file_error. No temporary is left behind on an error, nor when SIGINT arrives during the write (a
    /// handler is installed for the write's duration; it removes the temporary and re-raises the signal).
    void write(const std::filesystem::path& path) const {
        const auto order = layout();
        const std::vector<std::byte> header = header_bytes(order);
#if TCOMP_IO_HAVE_MMAP
        std::vector<std::span<const std::byte>> chunks;
        chunks.reserve(order.size() + 1);
        chunks.emplace_back(header);
        for (std::size_t i : order) chunks.emplace_back(entries_[i].data);
        detail::st_write_file(path, chunks);
#else
        std::filesystem::path tmp = path;
        tmp += detail::st_temp_suffix();
        {
            std::ofstream out(tmp, std::ios::binary | std::ios::trunc);
            if (!out) detail::throw_error<file_error>("safetensors_writer: ", tmp.string(), ": cannot create");
            auto put = [&](const std::vector<std::byte>& b) {
                out.write(reinterpret_cast<const char*>(b.data()), static_cast<std::streamsize>(b.size()));
            };
            put(header);
            for (std::size_t i : order) put(entries_[i].data);
            out.close();
            if (!out) {
                std::error_code ignore;
                std::filesystem::remove(tmp, ignore);
                detail::throw_error<file_error>("safetensors_writer: ", tmp.string(), ": write failed");
            }
        }
        std::error_code ec;
        std::filesystem::rename(tmp, path, ec);
        if (ec) {
            std::error_code ignore;
            std::filesystem::remove(tmp, ignore);
            detail::throw_error<file_error>("safetensors_writer: ", path.string(), ": rename failed: ", ec.message());
        }
#endif
    }

private:
    struct entry {
        std::string name;
        dtype type;
        std::vector<std::int64_t> shape;
        std::vector<std::byte> data;
    };

    static void check_text(const std::string& s, const char* what) {
        if (const auto bad = detail::utf8_error_at(s))
            detail::throw_error<value_error>("safetensors_writer: ", what, " is not valid UTF-8 (byte ", *bad, ")");
    }

    std::vector<std::size_t> layout() const {
        std::vector<std::size_t> order(entries_.size());
        for (std::size_t i = 0; i < order.size(); ++i) order[i] = i;
        std::stable_sort(order.begin(), order.end(), [&](std::size_t a, std::size_t b) {
            return dtype_size(entries_[a].type) > dtype_size(entries_[b].type);
        });
        return order;
    }

    /// The JSON object is written member by member (the same text as one ordered_json's dump()): inserting
    /// into an ordered_json looks the key up linearly, which made n tensors cost O(n^2).
    std::vector<std::byte> header_bytes(const std::vector<std::size_t>& order) const {
        std::string text = "{";
        auto member = [&](const std::string& key, const nlohmann::ordered_json& value) {
            if (text.size() > 1) text += ',';
            text += nlohmann::ordered_json(key).dump();
            text += ':';
            text += value.dump();
        };
        if (!metadata_.empty()) {
            nlohmann::ordered_json meta = nlohmann::ordered_json::object();
            for (const auto& [k, v] : metadata_) meta[k] = v;
            member("__metadata__", meta);
        }
        std::uint64_t offset = 0;
        for (std::size_t i : order) {
            const entry& e = entries_[i];
            const std::uint64_t end = offset + e.data.size();
            member(e.name, {{"dtype", std::string(to_string(e.type))},
                            {"shape", e.shape},
                            {"data_offsets", {offset, end}}});
            offset = end;
        }
        text += '}';
        text.append((8 - text.size() % 8) % 8, ' ');
        std::vector<std::byte> out(8 + text.size());
        detail::store_le(out.data(), static_cast<std::uint64_t>(text.size()));
        std::memcpy(out.data() + 8, text.data(), text.size());
        return out;
    }

    std::vector<entry> entries_;
    std::set<std::string, std::less<>> names_;
    std::map<std::string, std::string> metadata_;
};

/// A checkpoint that may be sharded: one `model.safetensors`, or `model.safetensors.index.json` (Hugging Face:
/// {"metadata": {...}, "weight_map": {tensor: shard file}}) and its shards. Lookups go across shards.
/// Throws file_error when the index names a shard that is missing or a tensor its shard lacks, when a shard
/// holds a tensor the index does not list, or when two shards hold the same name.
class safetensors_set {
public:
    /// `path`: a directory (model.safetensors.index.json, else model.safetensors), an index file
    /// (*.index.json) or a single .safetensors file.
    static safetensors_set open(const std::filesystem::path& path) {
        namespace fs = std::filesystem;
        std::error_code ec;
        if (fs::is_directory(path, ec)) {
            if (fs::exists(path / "model.safetensors.index.json", ec))
                return open_index(path / "model.safetensors.index.json");
            if (fs::exists(path / "model.safetensors", ec)) return open_single(path / "model.safetensors");
            detail::throw_error<file_error>("safetensors: ", path.string(),
                                            ": directory has neither model.safetensors.index.json nor model.safetensors");
        }
        const std::string name = path.filename().string();
        if (name.size() >= 11 && name.compare(name.size() - 11, 11, ".index.json") == 0) return open_index(path);
        return open_single(path);
    }

    bool contains(std::string_view name) const { return index_.find(name) != index_.end(); }

    const tensor_view& tensor(std::string_view name) const {
        const auto it = index_.find(name);
        if (it == index_.end())
            detail::throw_error<file_error>("safetensors: ", origin_, ": no tensor ", detail::st_quote(name),
                                            " in ", shards_.size(), " shard(s)");
        return tensors_[it->second];
    }

    /// Every tensor: shard by shard (shards in file-name order), each shard in file order.
    const std::vector<tensor_view>& tensors() const { return tensors_; }
    /// The shard file that holds `name` (throws like tensor()).
    const safetensors_file& shard_of(std::string_view name) const {
        const tensor_view& t = tensor(name);  // throws when missing
        return shards_[shard_index_[static_cast<std::size_t>(&t - tensors_.data())]];
    }
    const std::vector<safetensors_file>& shards() const { return shards_; }
    /// The directory, index or file given to open().
    const std::string& origin() const { return origin_; }

private:
    static safetensors_set open_single(const std::filesystem::path& file) {
        safetensors_set s;
        s.origin_ = file.string();
        s.shards_.push_back(safetensors_file::open(file));
        s.collect(nullptr);
        return s;
    }

    static safetensors_set open_index(const std::filesystem::path& index_path) {
        const std::string where = "safetensors: " + index_path.string();
        const std::string text = detail::read_small_file(index_path, detail::safetensors_max_header, "safetensors:");
        if (const auto bad = detail::utf8_error_at(text))
            detail::throw_error<file_error>(where, ": not valid UTF-8 (byte ", *bad, ")");
        const nlohmann::json index = detail::st_parse_json(text, where);
        if (!index.is_object()) detail::throw_error<file_error>(where, ": not a JSON object");
        const auto wm = index.find("weight_map");
        if (wm == index.end() || !wm->is_object())
            detail::throw_error<file_error>(where, ": no \"weight_map\" object");
        std::map<std::string, std::string, std::less<>> weight_map;
        std::set<std::string> shard_names;
        for (const auto& [tensor, shard] : wm->items()) {
            if (!shard.is_string())
                detail::throw_error<file_error>(where, ": tensor ", detail::st_quote(tensor),
                                                ": shard is not a string");
            const auto& file = shard.get_ref<const std::string&>();
            const std::filesystem::path p(file);
            if (file.empty() || p.is_absolute() || p.has_parent_path() || file == "." || file == "..")
                detail::throw_error<file_error>(where, ": tensor ", detail::st_quote(tensor), ": shard ",
                                                detail::st_quote(file), " is not a file name in the index's directory");
            weight_map.emplace(tensor, file);
            shard_names.insert(file);
        }

        safetensors_set s;
        s.origin_ = index_path.string();
        const auto dir = index_path.parent_path();
        for (const auto& shard : shard_names) {
            std::error_code ec;
            if (!std::filesystem::exists(dir / shard, ec)) {
                const auto it = std::find_if(weight_map.begin(), weight_map.end(),
                                             [&](const auto& kv) { return kv.second == shard; });
                detail::throw_error<file_error>(where, ": shard ", detail::st_quote(shard), " (holding tensor ",
                                                detail::st_quote(it->first), ") is missing");
            }
            s.shards_.push_back(safetensors_file::open(dir / shard));
            s.shard_names_.push_back(shard);
        }
        s.collect(&weight_map);
        for (const auto& [tensor, shard] : weight_map)
            if (!s.contains(tensor))
                detail::throw_error<file_error>(where, ": tensor ", detail::st_quote(tensor), " is mapped to shard ",
                                                detail::st_quote(shard), ", which does not hold it (missing tensor)");
        return s;
    }

    void collect(const std::map<std::string, std::string, std::less<>>* weight_map) {
        for (std::size_t s = 0; s < shards_.size(); ++s) {
            for (const tensor_view& t : shards_[s].tensors()) {
                const auto [it, inserted] = index_.emplace(t.name, tensors_.size());
                if (!inserted)
                    detail::throw_error<file_error>("safetensors: ", origin_, ": duplicate tensor ",
                                                    detail::st_quote(t.name), " in shards ",
                                                    shards_[shard_index_[it->second]].origin(), " and ",
                                                    shards_[s].origin());
                if (weight_map) {
                    const auto w = weight_map->find(t.name);
                    if (w == weight_map->end())
                        detail::throw_error<file_error>("safetensors: ", origin_, ": shard ", shards_[s].origin(),
                                                        " holds tensor ", detail::st_quote(t.name),
                                                        ", which the index does not list");
                    if (w->second != shard_names_[s])
                        detail::throw_error<file_error>("safetensors: ", origin_, ": tensor ",
                                                        detail::st_quote(t.name), " is in shard ",
                                                        shards_[s].origin(), " but the index maps it to ",
                                                        detail::st_quote(w->second));
                }
                tensors_.push_back(t);
                shard_index_.push_back(s);
            }
        }
    }

    std::string origin_;
    std::vector<safetensors_file> shards_;
    std::vector<std::string> shard_names_;
    std::vector<tensor_view> tensors_;
    std::vector<std::size_t> shard_index_;
    std::map<std::string, std::size_t, std::less<>> index_;
};

}  // namespace tcomp::io
