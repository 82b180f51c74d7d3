#!/usr/bin/env python3
"""Budget-vs-quality curve of the text-to-image recipes from tcomp-eval's output (docs/mixed-precision.md).

    tcomp-eval T2I_DIR --judge MLP --guidance 3 --recipe mixed_4.0.json,...,uniform_w4a8_g32.json > eval.log
    python3 bench/report/t2i_pareto.py eval.log --png docs/mixed-precision.png

Reads the lines "tcomp-eval: NAME on N images: prompt adherence A% (FP32 F%), PSNR P dB, SSIM S ...; linear layers
M MB packed, R x smaller than FP16"; recipes named mixed_* are the allocations (joined by a line), the others
uniform baselines (markers). Two panels against stored bits per weight (16 / R, biases included): PSNR against
FP32's images, and prompt adherence. Uses report.py's PNG canvas (no plotting library).
"""
import argparse
import os
import re
import sys

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
from report import BLACK, GRID, PALETTE, Canvas, text_width  # noqa: E402

LINE = re.compile(r"tcomp-eval: (\S+) on \d+ images: prompt adherence ([0-9.]+)% \(FP32 ([0-9.]+)%\), PSNR ([0-9.]+) dB, "
                  r"SSIM ([0-9.]+) .*?([0-9.]+)x smaller than FP16")


def main():
    ap = argparse.ArgumentParser()
    ap.add_argument("log")
    ap.add_argument("--png", default="docs/mixed-precision.png")
    a = ap.parse_args()
    pts, fp32 = [], None
    for line in open(a.log):
        m = LINE.search(line)
        if m:
            name = os.path.splitext(m.group(1))[0]
            pts.append((name, 16.0 / float(m.group(6)), float(m.group(4)), float(m.group(2))))
            fp32 = float(m.group(3))
    if not pts:
        sys.exit("t2i_pareto.py: no tcomp-eval recipe lines in " + a.log)
    W, H, panel_h, L, R = 900, 790, 300, 90, 250
    cv = Canvas(W, H)
    xs = [p[1] for p in pts]
    x0, x1 = min(xs) - 0.25, max(xs) + 0.25
    panels = [("PSNR vs FP32 images (dB)", 2, 10 * (min(p[2] for p in pts) // 10), 10 * (max(p[2] for p in pts) // 10 + 1)),
              ("prompt adherence (%)", 3, 5 * (min(p[3] for p in pts) // 5), 100.0)]
    for k, (title, col, y0, y1) in enumerate(panels):
        top = 40 + k * (panel_h + 70)
        X = lambda v: L + (v - x0) / (x1 - x0) * (W - L - R)
        Y = lambda v: top + panel_h - (v - y0) / (y1 - y0) * panel_h
        cv.text(L, top - 28, title)
        steps = 5
        for i in range(steps + 1):
            yv = y0 + (y1 - y0) * i / steps
            cv.line(L, Y(yv), W - R, Y(yv), GRID)
            cv.text(L - text_width(f"{yv:g}") - 8, int(Y(yv)) - 7, f"{yv:g}")
        cv.x_ticks(X, int(x0 * 2 + 1) / 2, x1, 0.5, top, top + panel_h)
        cv.line(L, top, L, top + panel_h, BLACK)
        cv.line(L, top + panel_h, W - R, top + panel_h, BLACK)
        if col == 3 and fp32 is not None:
            cv.line(L, Y(fp32), W - R, Y(fp32), BLACK, dash=6)
            cv.text(W - R + 8, int(Y(fp32)) - 7, "FP32", scale=2)
        mixed = sorted((p for p in pts if p[0].startswith("mixed")), key=lambda p: p[1])
        for p, q in zip(mixed, mixed[1:]):
            cv.line(X(p[1]), Y(p[col]), X(q[1]), Y(q[col]), PALETTE[0], width=2)
        legend_y = top
        for i, p in enumerate(pts):
            c = PALETTE[0] if p[0].startswith("mixed") else PALETTE[1 + i % (len(PALETTE) - 1)]
            shape = 0 if p[0].startswith("mixed") else 1 + i % 2
            cv.marker(X(p[1]), Y(p[col]), shape, c)
            if k == 0 and not p[0].startswith("mixed"):
                cv.legend_entry(W - R, legend_y, shape, c, p[0].replace("uniform_", ""))
                legend_y += 22
        if k == 0:
            cv.legend_entry(W - R, legend_y, 0, PALETTE[0], "mixed (tcomp-mixed)")
    cv.text(L, H - 24, "stored bits per weight (16 / x smaller than FP16)")
    cv.save(a.png)
    print(f"wrote {a.png}: {len(pts)} recipes")


if __name__ == "__main__":
    main()
