#!/usr/bin/env python3
"""Quality against bits per weight of the calibration methods on stories260K (docs/quantization-methods.md).

    bench/report/methods_sweep.sh > methods.csv
    python3 bench/report/methods_plot.py methods.csv --png docs/quantization-methods.png

Reads methods_sweep.sh's CSV (policy,bits,method,ppl_ratio,kl,top1,seconds) and draws mean KL(FP32 || Q) per
token (log scale) against stored bits per weight, one colour per method, each method's points joined in order of
bits. llama.cpp's Q4_0 is drawn at 4.5 bits with the figure the calibration issue quotes (0.097, measured there
with llama.cpp, not by this script). Uses report.py's PNG canvas (no plotting library).
"""
import argparse
import csv
import math
import os
import sys

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
from report import BLACK, GRID, PALETTE, Canvas, text_width  # noqa: E402

Q4_0 = (4.5, 0.097)


def main():
    ap = argparse.ArgumentParser()
    ap.add_argument("csv")
    ap.add_argument("--png", default="docs/quantization-methods.png")
    a = ap.parse_args()
    rows = list(csv.DictReader(open(a.csv)))
    if not rows:
        sys.exit("methods_plot.py: no rows in " + a.csv)
    methods = []
    for r in rows:
        if r["method"] not in methods:
            methods.append(r["method"])
    pts = [(r["method"], float(r["bits"]), float(r["kl"]), r["policy"]) for r in rows]
    W, H, L, R, top, ph = 1000, 620, 90, 230, 50, 480
    x0, x1 = min(p[1] for p in pts) - 0.25, max(p[1] for p in pts) + 0.25
    y0, y1 = math.floor(math.log10(min(p[2] for p in pts + [(0, 0, Q4_0[1], "")]))), 1.0
    X = lambda v: L + (v - x0) / (x1 - x0) * (W - L - R)
    Y = lambda v: top + ph - (math.log10(v) - y0) / (y1 - y0) * ph
    cv = Canvas(W, H)
    cv.text(L, top - 36, "stories260K: KL(FP32 || Q) per token, 40 dev stories")
    e = y0
    while e <= y1:
        for m in (1, 2, 5):
            v = m * 10 ** e
            if math.log10(v) > y1 + 1e-9:
                break
            cv.line(L, Y(v), W - R, Y(v), GRID)
            cv.text(L - text_width(f"{v:g}") - 8, int(Y(v)) - 7, f"{v:g}")
        e += 1
    cv.x_ticks(X, math.ceil(x0 * 2) / 2, x1, 0.5, top, top + ph)
    cv.line(L, top, L, top + ph, BLACK)
    cv.line(L, top + ph, W - R, top + ph, BLACK)
    cv.line(L, Y(0.045), W - R, Y(0.045), BLACK, dash=6)
    cv.text(W - R + 8, int(Y(0.045)) - 7, "target 0.045", scale=2)
    legend_y = top + 30
    for i, method in enumerate(methods):
        c = PALETTE[i % len(PALETTE)]
        mine = sorted((p for p in pts if p[0] == method), key=lambda p: p[1])
        for p, q in zip(mine, mine[1:]):
            cv.line(X(p[1]), Y(p[2]), X(q[1]), Y(q[2]), c, width=2)
        for p in mine:
            cv.marker(X(p[1]), Y(p[2]), i % 3, c)
        cv.legend_entry(W - R, legend_y, i % 3, c, method)
        legend_y += 22
    cv.marker(X(Q4_0[0]), Y(Q4_0[1]), 1, BLACK, filled=False, r=7)
    cv.legend_entry(W - R, legend_y, 1, BLACK, "Q4_0 (issue)", filled=False, r=7)
    cv.text(L, H - 30, "stored bits per weight (codes + scales + zero points)")
    cv.save(a.png)
    print(f"wrote {a.png}: {len(pts)} points, {len(methods)} methods")


if __name__ == "__main__":
    main()
