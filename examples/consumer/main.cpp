// A separate project that uses the installed tcomp package.
#include <tcomp/tcomp.hpp>
#include <cstdio>
#include <string>
int main() {
    using W4 = tcomp::quantizer<tcomp::int_format<4>, tcomp::symmetric, tcomp::per_group<32>>;
    using A8 = tcomp::quantizer<tcomp::int_format<8>, tcomp::asymmetric, tcomp::per_token, tcomp::dynamic>;
    using W4A8 = tcomp::policy<W4, A8>;
    Eigen::MatrixXf w = Eigen::MatrixXf::Random(64, 128);
    Eigen::MatrixXf x = Eigen::MatrixXf::Random(4, 128);
    auto compressed = tcomp::compress<W4A8>(w);
    Eigen::MatrixXf y = tcomp::matmul(x, compressed);
    Eigen::MatrixXf reference = x * w.transpose();
    const double relative_error = (y - reference).norm() / reference.norm();
    std::printf("consumer: %zu bytes, %.3f bits/weight, relative error %.4f\n",
                compressed.bytes(), compressed.bits_per_weight(), relative_error);

    // The SIMD CPU kernels (tcomp::cpu): pack once, then the same result as the reference, bit for bit.
    const auto packed = tcomp::cpu::pack(compressed);
    Eigen::Matrix<float, Eigen::Dynamic, Eigen::Dynamic, Eigen::RowMajor> xr = x, ys(4, 64);
    const tcomp::matrix_view<const float> xv(xr.data(), 4, 128, 128);
    tcomp::matmul(xv, packed, tcomp::matrix_view<float>(ys.data(), 4, 64, 64));
    const bool same = (ys - y).cwiseAbs().maxCoeff() == 0.0f;
    std::printf("consumer: CPU path %s, kernel %s, %s the reference\n",
                std::string(tcomp::cpu::to_string(tcomp::cpu::active_path())).c_str(),
                tcomp::cpu::to_string(packed.family()), same ? "matches" : "DIFFERS FROM");
    return relative_error < 0.2 && same ? 0 : 1;
}
