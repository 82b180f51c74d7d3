// All quality metrics: signal (SQNR, PSNR, cosine), distributions (KL, top-1, perplexity), images (SSIM),
// classification (accuracy).
#pragma once

#include "tcomp/metrics/classification.hpp"
#include "tcomp/metrics/distribution.hpp"
#include "tcomp/metrics/image.hpp"
#include "tcomp/metrics/signal.hpp"
