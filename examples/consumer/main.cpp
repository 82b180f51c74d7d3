// A separate project that uses the installed tcomp package.
#include <tcomp/tcomp.hpp>
#include <cstdio>
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
    return relative_error < 0.2 ? 0 : 1;
}
