// Streaming statistics of one layer's input X[rows x K], gathered over calibration batches: what the
// calibration methods need, in memory independent of the calibration set's size (O(K), plus K x K doubles for
// the Hessian when asked for):
//   per input channel: sum of squares (mean x^2: the importance of llama.cpp's imatrix and AWQ's activation
//   scale), absmax (SmoothQuant's migration), running min / max;
//   the Hessian proxy sum_rows x^T x (GPTQ, SparseGPT): each batch's product in float, accumulated in double
//   (relative error of a batch's entries ~1e-6, far below GPTQ's damping of 1e-2 mean(diag H)), its diagonal
//   the double sums of squares;
//   optionally a uniform sample of at most S rows (reservoir sampling, fixed seed: reproducible), for the
//   searches whose error needs real rows (SmoothQuant's migration strength under activation quantization,
//   static activation clipping): memory S x K, whatever the calibration set's size.
// Batches are checked (width, NaN/Inf) before they touch the sums; merge() adds statistics gathered elsewhere
// (another thread, another file) and equals observing both sets.
#pragma once

#include <Eigen/Core>

#include <algorithm>
#include <cmath>
#include <cstdint>
#include <limits>
#include <span>
#include <string>
#include <vector>

#include "tcomp/core/error.hpp"
#include "tcomp/core/matrix_view.hpp"

namespace tcomp::calib {

class input_statistics {
public:
    input_statistics() = default;
    /// k input channels; `with_hessian`: also accumulate sum x^T x (k x k doubles); `sample_rows`: keep a
    /// uniform sample of up to that many rows (0: none); `hessian_stride`: the Hessian sums every s-th row of
    /// the stream (1: every row). Convolutions give a layer hundreds of thousands of strongly correlated im2col
    /// rows; the Hessian costs rows x K^2, and GPTQ's result depends on its shape, not its scale (hessian_rows()
    /// says how many rows it sums). The other statistics always see every row.
    explicit input_statistics(index_t k, bool with_hessian = true, index_t sample_rows = 0,
                              index_t hessian_stride = 1)
        : k_(k), sample_capacity_(sample_rows), sum_sq_(static_cast<std::size_t>(k), 0.0), absmax_(static_cast<std::size_t>(k), 0.0f),
          min_(static_cast<std::size_t>(k), std::numeric_limits<float>::infinity()),
          max_(static_cast<std::size_t>(k), -std::numeric_limits<float>::infinity()) {
        if (k <= 0) tcomp::detail::throw_error<shape_error>("input_statistics: ", k, " input channels (need at least 1)");
        if (with_hessian) hessian_ = Eigen::MatrixXd::Zero(k, k), hdiag_.assign(static_cast<std::size_t>(k), 0.0);
        if (hessian_stride < 1)
            tcomp::detail::throw_error<shape_error>("input_statistics: a Hessian stride of ", hessian_stride, " (need >= 1)");
        hessian_stride_ = hessian_stride;
        if (sample_rows < 0)
            tcomp::detail::throw_error<shape_error>("input_statistics: a sample of ", sample_rows, " rows");
    }

    /// Adds a batch of calibration rows. Throws shape_error for a batch of another width and value_error naming
    /// the first NaN/Inf; a rejected batch leaves the statistics as they were.
    void observe(matrix_view<const float> x) {
        if (x.cols() != k_)
            tcomp::detail::throw_error<shape_error>("input_statistics::observe: the batch has ", x.cols(),
                                                    " columns, the layer has ", k_, " input channels");
        tcomp::detail::require_finite(x, "input_statistics::observe", "x");
        if (x.rows() == 0) return;
        for (index_t r = 0; r < x.rows(); ++r)
            for (index_t c = 0; c < k_; ++c) {
                const float v = x(r, c);
                const auto i = static_cast<std::size_t>(c);
                sum_sq_[i] += static_cast<double>(v) * static_cast<double>(v);
                absmax_[i] = std::max(absmax_[i], std::fabs(v));
                min_[i] = std::min(min_[i], v);
                max_[i] = std::max(max_[i], v);
            }
        if (has_hessian()) {
            // The batch's x^T x in float (a GEMM at twice double's SIMD width: 3-10x faster here), accumulated in
            // double across batches; the diagonal is set from the double sums of squares, so it is exact.
            using row_major_f = Eigen::Matrix<float, Eigen::Dynamic, Eigen::Dynamic, Eigen::RowMajor>;
            // Rows t (over the whole stream) with t % stride == 0.
            const index_t first = (hessian_stride_ - rows_ % hessian_stride_) % hessian_stride_;
            const index_t used = first < x.rows() ? (x.rows() - first + hessian_stride_ - 1) / hessian_stride_ : 0;
            row_major_f xf(used, k_);
            for (index_t i = 0; i < used; ++i) {
                const index_t r = first + i * hessian_stride_;
                for (index_t c = 0; c < k_; ++c) {
                    const float v = x(r, c);
                    xf(i, c) = v;
                    hdiag_[static_cast<std::size_t>(c)] += static_cast<double>(v) * static_cast<double>(v);
                }
            }
            Eigen::MatrixXf batch(k_, k_);
            batch.noalias() = xf.transpose() * xf;
            hessian_.triangularView<Eigen::StrictlyLower>() += batch.cast<double>();
            for (index_t c = 0; c < k_; ++c) hessian_(c, c) = hdiag_[static_cast<std::size_t>(c)];
            hessian_rows_ += used;
        }
        // Algorithm R: row t (0-based over all rows) replaces a random slot with probability S / (t + 1).
        for (index_t r = 0; r < x.rows() && sample_capacity_ > 0; ++r) {
            const index_t t = rows_ + r;
            index_t slot = t;
            if (t >= sample_capacity_) slot = static_cast<index_t>(next_random() % static_cast<std::uint64_t>(t + 1));
            if (slot >= sample_capacity_) continue;
            if (slot == sample_count()) sample_.resize(sample_.size() + static_cast<std::size_t>(k_));
            std::copy(x.row(r).begin(), x.row(r).end(), sample_.begin() + slot * k_);
        }
        rows_ += x.rows();
    }

    /// Adds statistics of the same layer gathered elsewhere.
    void merge(const input_statistics& other) {
        if (other.k_ != k_ || other.has_hessian() != has_hessian())
            tcomp::detail::throw_error<shape_error>("input_statistics::merge: ", other.k_, " channels",
                                                    other.has_hessian() ? " with" : " without", " a Hessian into ", k_,
                                                    has_hessian() ? " with" : " without", " one");
        for (std::size_t i = 0; i < sum_sq_.size(); ++i) {
            sum_sq_[i] += other.sum_sq_[i];
            absmax_[i] = std::max(absmax_[i], other.absmax_[i]);
            min_[i] = std::min(min_[i], other.min_[i]);
            max_[i] = std::max(max_[i], other.max_[i]);
        }
        if (has_hessian()) {
            hessian_.triangularView<Eigen::Lower>() += other.hessian_;
            for (std::size_t i = 0; i < hdiag_.size(); ++i) hdiag_[i] += other.hdiag_[i];
            hessian_rows_ += other.hessian_rows_;
        }
        merge_sample(other);
        rows_ += other.rows_;
    }

    /// The raw sums, for a statistics file (io/statistics_file.hpp).
    struct parts {
        index_t rows = 0;
        std::vector<double> sum_sq;
        std::vector<float> absmax, min, max;
        std::vector<double> hessian;  // k x k row-major (symmetric), or empty
        std::vector<float> sample;    // sample rows x k row-major, or empty
        index_t hessian_rows = 0;     // rows the Hessian sums (0: all rows)
    };
    parts to_parts() const {
        parts p{rows_, sum_sq_, absmax_, min_, max_, {}, sample_, hessian_rows_ == rows_ ? 0 : hessian_rows_};
        if (has_hessian()) {
            const Eigen::MatrixXd h = hessian_.selfadjointView<Eigen::Lower>();
            p.hessian.resize(static_cast<std::size_t>(k_ * k_));
            for (index_t i = 0; i < k_; ++i)
                for (index_t j = 0; j < k_; ++j) p.hessian[static_cast<std::size_t>(i * k_ + j)] = h(i, j);
        }
        return p;
    }
    /// Statistics from raw sums, checked as a file's contents must be: sizes, finite values, sums of squares
    /// >= 0, absmax = max(|min|, |max|) per channel, a symmetric Hessian whose diagonal is the sums of squares
    /// (within rounding). `where` names the source in the errors.
    static input_statistics from_parts(index_t k, parts p, const std::string& where) {
        auto fail = [&](auto&&... why) { tcomp::detail::throw_error<value_error>(where, ": ", why...); };
        if (k <= 0) fail(k, " input channels");
        const auto n = static_cast<std::size_t>(k);
        if (p.sum_sq.size() != n || p.absmax.size() != n || p.min.size() != n || p.max.size() != n)
            tcomp::detail::throw_error<shape_error>(where, ": per-channel statistics of ", p.sum_sq.size(), "/",
                                                    p.absmax.size(), "/", p.min.size(), "/", p.max.size(),
                                                    " entries for ", k, " channels");
        if (!p.hessian.empty() && p.hessian.size() != n * n)
            tcomp::detail::throw_error<shape_error>(where, ": a Hessian of ", p.hessian.size(), " entries for ", k,
                                                    " channels (", n * n, " expected)");
        if (p.rows <= 0) fail(p.rows, " calibration rows (must be > 0)");
        if (p.sample.size() % n != 0 || static_cast<index_t>(p.sample.size() / n) > p.rows)
            tcomp::detail::throw_error<shape_error>(where, ": a sample of ", p.sample.size(), " values is not whole rows of ",
                                                    k, " channels, or has more rows than the ", p.rows, " observed");
        for (std::size_t i = 0; i < p.sample.size(); ++i) {
            const std::size_t c = i % n;
            if (!std::isfinite(p.sample[i]) || p.sample[i] < p.min[c] || p.sample[i] > p.max[c])
                fail("sample row ", i / n, ", channel ", c, ": ", p.sample[i], " is not finite or outside [min, max]");
        }
        for (std::size_t i = 0; i < n; ++i) {
            if (!std::isfinite(p.sum_sq[i]) || p.sum_sq[i] < 0.0) fail("channel ", i, ": sum of squares ", p.sum_sq[i]);
            if (!std::isfinite(p.min[i]) || !std::isfinite(p.max[i]) || p.min[i] > p.max[i] ||
                p.absmax[i] != std::max(std::fabs(p.min[i]), std::fabs(p.max[i])))
                fail("channel ", i, ": min ", p.min[i], ", max ", p.max[i], ", absmax ", p.absmax[i], " disagree");
        }
        input_statistics s(k, !p.hessian.empty(), static_cast<index_t>(p.sample.size() / n));
        if (!p.hessian.empty()) {
            for (index_t i = 0; i < k; ++i)
                for (index_t j = 0; j <= i; ++j) {
                    const double a = p.hessian[static_cast<std::size_t>(i * k + j)], b = p.hessian[static_cast<std::size_t>(j * k + i)];
                    if (!std::isfinite(a) || a != b) fail("the Hessian is not finite and symmetric at (", i, ", ", j, ")");
                    s.hessian_(i, j) = a;
                }
            const bool all_rows = p.hessian_rows == 0 || p.hessian_rows == p.rows;
            if (p.hessian_rows < 0 || p.hessian_rows > p.rows)
                fail("the Hessian sums ", p.hessian_rows, " rows of the ", p.rows, " observed");
            for (index_t i = 0; i < k; ++i) {
                const double d = s.hessian_(i, i), want = p.sum_sq[static_cast<std::size_t>(i)];
                // Over every row the diagonal is the channel's sum of squares; over a subset it cannot exceed it.
                if (all_rows ? std::fabs(d - want) > 1e-6 * std::max(1.0, std::fabs(want)) : d < 0.0 || d > want * (1 + 1e-6))
                    fail("the Hessian's diagonal (", d, " at ", i, ") disagrees with the channel's sum of squares (",
                         want, all_rows ? ")" : ", a bound: the Hessian sums a subset of the rows)");
                s.hdiag_[static_cast<std::size_t>(i)] = d;
            }
            s.hessian_rows_ = all_rows ? p.rows : p.hessian_rows;
        }
        s.rows_ = p.rows;
        s.sample_ = std::move(p.sample);
        s.sum_sq_ = std::move(p.sum_sq), s.absmax_ = std::move(p.absmax), s.min_ = std::move(p.min), s.max_ = std::move(p.max);
        return s;
    }

    index_t channels() const { return k_; }
    /// Calibration rows seen so far.
    index_t rows() const { return rows_; }
    bool has_hessian() const { return hessian_.size() > 0; }
    /// Rows the Hessian sums (rows() with a stride of 1).
    index_t hessian_rows() const { return hessian_rows_; }
    /// The sampled rows (sample_count() x channels(), row-major; empty without a sample).
    matrix_view<const float> sample() const { return {sample_.data(), sample_count(), k_}; }
    index_t sample_count() const { return k_ == 0 ? 0 : static_cast<index_t>(sample_.size()) / k_; }
    index_t sample_capacity() const { return sample_capacity_; }
    /// The statistics of x / s (per input channel, s > 0): what a layer whose input is divided by smoothing
    /// divisors s (SmoothQuant, AWQ) sees. Exact for every part, the sample and the Hessian included.
    input_statistics divided_by(std::span<const float> s) const {
        if (static_cast<index_t>(s.size()) != k_)
            tcomp::detail::throw_error<shape_error>("input_statistics::divided_by: ", s.size(), " divisors for ", k_,
                                                    " channels");
        for (std::size_t i = 0; i < s.size(); ++i)
            if (!std::isfinite(s[i]) || !(s[i] > 0.0f))
                tcomp::detail::throw_error<value_error>("input_statistics::divided_by: divisor ", i, " is ", s[i]);
        input_statistics out = *this;
        for (std::size_t i = 0; i < s.size(); ++i) {
            const double d = s[i];
            out.sum_sq_[i] /= d * d;
            out.absmax_[i] /= s[i], out.min_[i] /= s[i], out.max_[i] /= s[i];
        }
        if (has_hessian())
            for (index_t i = 0; i < k_; ++i) {
                for (index_t j = 0; j <= i; ++j)
                    out.hessian_(i, j) /= static_cast<double>(s[static_cast<std::size_t>(i)]) * s[static_cast<std::size_t>(j)];
                out.hdiag_[static_cast<std::size_t>(i)] = out.hessian_(i, i);
            }
        for (std::size_t i = 0; i < out.sample_.size(); ++i) out.sample_[i] /= s[i % s.size()];
        return out;
    }
    /// Mean |x| per channel is not kept; the RMS sqrt(mean x^2) stands in for it (AWQ's activation scale).
    std::vector<float> rms() const {
        std::vector<float> out = mean_square();
        for (float& v : out) v = std::sqrt(v);
        return out;
    }

    /// Mean x^2 per channel (the imatrix importance); value_error before any row was seen.
    std::vector<float> mean_square() const {
        require_rows("mean_square");
        std::vector<float> out(sum_sq_.size());
        for (std::size_t i = 0; i < out.size(); ++i) out[i] = static_cast<float>(sum_sq_[i] / static_cast<double>(rows_));
        return out;
    }
    std::span<const float> absmax() const { return absmax_; }
    std::span<const float> channel_min() const { return min_; }
    std::span<const float> channel_max() const { return max_; }
    /// sum over rows of x^T x (k x k, symmetric). GPTQ's H = 2/n of this; the methods are invariant to the factor.
    Eigen::MatrixXd hessian() const {
        require_rows("hessian");
        if (!has_hessian())
            tcomp::detail::throw_error<error>("input_statistics::hessian: these statistics were gathered without the "
                                              "Hessian (input_statistics(k, true) collects it)");
        Eigen::MatrixXd h = hessian_.selfadjointView<Eigen::Lower>();
        return h;
    }

private:
    void require_rows(const char* what) const {
        if (rows_ == 0)
            tcomp::detail::throw_error<value_error>("input_statistics::", what,
                                                    ": no calibration rows were observed (an empty calibration set)");
    }

    // splitmix64: a fixed-seed generator, so a sample is a function of the rows and their order.
    std::uint64_t next_random() {
        std::uint64_t z = (rng_ += 0x9E3779B97F4A7C15ull);
        z = (z ^ (z >> 30)) * 0xBF58476D1CE4E5B9ull;
        z = (z ^ (z >> 27)) * 0x94D049BB133111EBull;
        return z ^ (z >> 31);
    }
    /// Both samples stand for their row counts: the merged one takes from each in proportion (a random subset).
    void merge_sample(const input_statistics& other) {
        const index_t cap = sample_capacity_;
        if (cap == 0 || other.sample_count() == 0) return;
        const index_t na = sample_count(), nb = other.sample_count();
        if (na + nb <= cap && rows_ == na && other.rows_ == nb) {  // both still hold every row they saw
            sample_.insert(sample_.end(), other.sample_.begin(), other.sample_.end());
            return;
        }
        const double share = static_cast<double>(rows_) / static_cast<double>(rows_ + other.rows_);
        index_t ka = std::min(na, static_cast<index_t>(std::llround(share * static_cast<double>(cap))));
        index_t kb = std::min(nb, cap - ka);
        ka = std::min(na, cap - kb);
        auto pick = [&](const std::vector<float>& rows, index_t n, index_t k_take, std::vector<float>& out) {
            std::vector<index_t> idx(static_cast<std::size_t>(n));
            for (index_t i = 0; i < n; ++i) idx[static_cast<std::size_t>(i)] = i;
            for (index_t i = 0; i < k_take; ++i) {  // partial Fisher-Yates
                const index_t j = i + static_cast<index_t>(next_random() % static_cast<std::uint64_t>(n - i));
                std::swap(idx[static_cast<std::size_t>(i)], idx[static_cast<std::size_t>(j)]);
                out.insert(out.end(), rows.begin() + idx[static_cast<std::size_t>(i)] * k_,
                           rows.begin() + (idx[static_cast<std::size_t>(i)] + 1) * k_);
            }
        };
        std::vector<float> merged;
        merged.reserve(static_cast<std::size_t>((ka + kb) * k_));
        pick(sample_, na, ka, merged);
        pick(other.sample_, nb, kb, merged);
        sample_ = std::move(merged);
    }

    index_t k_ = 0;
    index_t sample_capacity_ = 0;
    std::uint64_t rng_ = 0x7463'6f6d'7053'616dull;
    std::vector<float> sample_;
    index_t rows_ = 0;
    std::vector<double> sum_sq_;
    std::vector<float> absmax_, min_, max_;
    Eigen::MatrixXd hessian_;  // lower triangle filled
    std::vector<double> hdiag_;  // the Hessian's diagonal: sums of squares over its rows, in double
    index_t hessian_stride_ = 1, hessian_rows_ = 0;
};

}  // namespace tcomp::calib
