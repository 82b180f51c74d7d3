#!/usr/bin/env python3
"""Turns the Google Benchmark JSON files of bench/run_cpu_suite.sh into docs/performance.md and docs/roofline.png.

    python3 bench/report/report.py RESULTS_DIR [--out docs/performance.md] [--png docs/roofline.png]

Reads every *.json in RESULTS_DIR (written with --benchmark_format=json or --benchmark_out, any number of
repetitions): the limits of bench_limits (limits/<what>/threads:<t>) and the GEMM rows of every suite and peer
(<suite>/<variant>/M:<m>/threads:<t>/<hot|cold>, see bench/gemm_bench.hpp). Each row's figure is the median over
its repetitions, with the spread min..max. Standard library only (no numpy / matplotlib): the PNG is drawn here,
with a built-in 5x7 bitmap font, and written with zlib + struct.
"""

import argparse
import glob
import json
import math
import os
import re
import statistics
import struct
import sys
import zlib
from datetime import datetime, timezone

# ----------------------------------------------------------------------------------------------- configuration

# Which peak a row is measured against, by "<suite>/<variant>" (for peers "peer/<variant>"): the first pattern
# that matches gives the class. Classes are defined in PEAK_CLASSES.
SUITE_PEAK = [
    (r"^peer/onednn_[us]8s8", "int8"),
    (r"^peer/.*bf16", "bf16"),
    (r"^peer/.*f32", "fp32"),
    (r"^w\d+a8", "int8"),          # w8a8, w4a8, w2a8, w8a8_2of4, w4a8_2of4 ...: int8 dot products
    (r"^w\d+a[124]/", "int8"),     # w1a1, w2a2, w4a4: binary / low-bit integer dot products
    (r"^w\d+a[124]_", "int8"),
    (r"^w\d+a16", "fp32"),         # weight-only: dequantize + fp32 FMA
    (r"^(f32|fp32)", "fp32"),
    (r"^bf16", "bf16"),
]

# A class's candidate limits (bench_limits names). The matching peak is the limit the variant's name points to
# (ISA_HINTS: a variant named after an instruction set is measured against that set's peak), otherwise the
# highest measured limit of the class.
PEAK_CLASSES = {
    "int8": ["int8_dot_zmm_vnni", "int8_dot_ymm_avxvnni", "int8_pair_zmm_avx512bw", "int8_pair_ymm_avx2"],
    "fp32": ["fp32_fma_zmm", "fp32_fma_ymm"],
    # bf16 rows: the better of the bf16 dot instruction and converting to fp32 + FMA.
    "bf16": ["bf16_dot_zmm", "fp32_fma_zmm", "fp32_fma_ymm"],
}
ISA_HINTS = {
    "int8": [("avx512_vnni", "int8_dot_zmm_vnni"), ("avx_vnni", "int8_dot_ymm_avxvnni"),
             ("avx512bw", "int8_pair_zmm_avx512bw"), ("avx2", "int8_pair_ymm_avx2")],
    "fp32": [("avx512", "fp32_fma_zmm"), ("avx2", "fp32_fma_ymm"), ("avx_vnni", "fp32_fma_ymm")],
    "bf16": [],
}

LIMIT_DESCRIPTIONS = {
    "int8_dot_zmm_vnni": "int8 dot, vpdpbusd zmm (AVX512-VNNI)",
    "int8_dot_ymm_avxvnni": "int8 dot, vpdpbusd ymm (AVX-VNNI)",
    "int8_pair_zmm_avx512bw": "int8 dot, vpmaddubsw+vpmaddwd zmm (AVX512-BW)",
    "int8_pair_ymm_avx2": "int8 dot, vpmaddubsw+vpmaddwd ymm (AVX2)",
    "fp32_fma_zmm": "fp32 FMA zmm (AVX-512F)",
    "fp32_fma_ymm": "fp32 FMA ymm (FMA3)",
    "bf16_dot_zmm": "bf16 dot, vdpbf16ps zmm (AVX512-BF16)",
    "dram_read": "DRAM read bandwidth",
}

GEMM_NAME = re.compile(r"^(?P<suite>[^/]+)/(?P<variant>[^/]+)/M:(?P<m>\d+)/threads:(?P<t>\d+)/(?P<w>hot|cold)$")
LIMIT_NAME = re.compile(r"^limits/(?P<what>[^/]+)/threads:(?P<t>\d+)$")
SUFFIXES = ("/real_time", "/manual_time")


# ----------------------------------------------------------------------------------------------- loading

class Stat:
    """Median and min..max of one benchmark's repetitions."""

    def __init__(self, values):
        values = [v for v in values if v is not None]
        self.n = len(values)
        self.median = statistics.median(values) if values else None
        self.lo = min(values) if values else None
        self.hi = max(values) if values else None


class Row:
    def __init__(self, name, suite, variant, m, threads, cold, reps):
        self.name, self.suite, self.variant = name, suite, variant
        self.m, self.threads, self.cold = m, threads, cold
        self.ms = Stat([to_ms(r["real_time"], r.get("time_unit", "ns")) for r in reps])
        self.gops = Stat([r.get("GOPS") for r in reps])
        self.wgbps = Stat([r.get("weight_GBps") for r in reps])
        self.weight_bytes = reps[0].get("weight_bytes")
        self.n = int(reps[0].get("N", 0))
        self.k = int(reps[0].get("K", 0))

    @property
    def key(self):
        return f"{self.suite}/{self.variant}"

    @property
    def intensity(self):
        """Operations per weight byte (2MNK / weight bytes)."""
        if not self.weight_bytes or self.gops.median is None:
            return None
        return 2.0 * self.m * self.n * self.k / self.weight_bytes


def to_ms(value, unit):
    return value * {"ns": 1e-6, "us": 1e-3, "ms": 1.0, "s": 1e3}[unit]


def strip_suffix(name):
    for s in SUFFIXES:
        if name.endswith(s):
            return name[: -len(s)]
    return name


def load(results_dir):
    """Returns (contexts, limits, rows, errors): limits[(what, threads)] -> (Stat, label)."""
    files = sorted(glob.glob(os.path.join(results_dir, "*.json")))
    if not files:
        sys.exit(f"report.py: no *.json in {results_dir}")
    contexts, errors = [], {}
    groups, order = {}, []
    for path in files:
        with open(path) as f:
            try:
                data = json.load(f)
            except json.JSONDecodeError as e:
                print(f"report.py: skipping {path}: {e}", file=sys.stderr)
                continue
        ctx = dict(data.get("context", {}))
        ctx["_file"] = os.path.basename(path)
        contexts.append(ctx)
        for b in data.get("benchmarks", []):
            name = strip_suffix(b.get("run_name", b["name"]))
            if b.get("error_occurred"):
                errors[name] = b.get("error_message", "error")
                continue
            kind = b.get("run_type", "iteration")
            if kind == "aggregate" and b.get("aggregate_name") != "median":
                continue
            key = (ctx["_file"], name)
            if key not in groups:
                groups[key] = {"iteration": [], "aggregate": []}
                order.append(key)
            groups[key][kind if kind in ("iteration", "aggregate") else "iteration"].append(b)
    limits, rows = {}, []
    for fname, name in order:
        g = groups[(fname, name)]
        reps = g["iteration"] or g["aggregate"]  # aggregates only when the run kept no repetitions
        if not reps:
            continue
        lm = LIMIT_NAME.match(name)
        if lm:
            # A limit measured more than once (run_cpu_suite.sh measures them before and after the suites): other
            # load on the machine only ever lowers a peak, so the best median stands.
            value = "GBps" if "GBps" in reps[0] else "GOPS"
            stat = Stat([r.get(value) for r in reps])
            key = (lm["what"], int(lm["t"]))
            if key not in limits or (stat.median or 0) > (limits[key][0].median or 0):
                limits[key] = (stat, reps[0].get("label", ""))
            continue
        gm = GEMM_NAME.match(name)
        if gm:
            if any(r.name == name for r in rows):
                print(f"report.py: {name} appears in more than one file; keeping the first ({fname} ignored)",
                      file=sys.stderr)
                continue
            rows.append(Row(name, gm["suite"], gm["variant"], int(gm["m"]), int(gm["t"]), gm["w"] == "cold", reps))
    return contexts, limits, rows, errors


# ----------------------------------------------------------------------------------------------- peaks

def peak_class(row):
    for pattern, cls in SUITE_PEAK:
        if re.search(pattern, row.key):
            return cls
    return None


def limit_value(limits, what, threads):
    entry = limits.get((what, threads))
    return entry[0].median if entry and entry[0].median else None


def matching_peak(limits, row):
    """(limit name, GOP/s) the row is measured against, or (None, None)."""
    cls = peak_class(row)
    if cls is None:
        return None, None
    for hint, what in ISA_HINTS.get(cls, []):
        if hint in row.variant:
            v = limit_value(limits, what, row.threads)
            if v:
                return what, v
            break
    best = None
    for what in PEAK_CLASSES[cls]:
        v = limit_value(limits, what, row.threads)
        if v and (best is None or v > best[1]):
            best = (what, v)
    return best if best else (None, None)


def dram(limits, threads):
    return limit_value(limits, "dram_read", threads)


# ----------------------------------------------------------------------------------------------- markdown

def fmt(v, digits=3):
    """Three significant digits, no exponent."""
    if v is None:
        return "—"
    if v == 0:
        return "0"
    mag = int(math.floor(math.log10(abs(v))))
    decimals = max(0, digits - 1 - mag)
    return f"{v:.{decimals}f}"


def fmt_spread(stat, digits=3):
    if stat.median is None:
        return "—"
    if stat.n <= 1:
        return fmt(stat.median, digits)
    return f"{fmt(stat.median, digits)} ({fmt(stat.lo, digits)}–{fmt(stat.hi, digits)})"


def pct(a, b):
    return f"{100.0 * a / b:.0f}%" if a is not None and b else "—"


def is_peer(row):
    return row.suite == "peer"


def row_sort_key(row):
    return (row.cold, is_peer(row), row.suite, row.variant)


def host_section(contexts):
    ctx = next((c for c in contexts if c.get("tcomp_cpu_model")), contexts[0] if contexts else {})
    model = ctx.get("tcomp_cpu_model") or cpuinfo_field("model name") or "unknown CPU"
    flags = ctx.get("tcomp_cpu_flags") or ""
    caches = ", ".join(f"L{c['level']} {c['type'].lower()} {human_bytes(c['size'])}"
                       + (f" (shared by {c['num_sharing']})" if c.get("num_sharing", 1) > 1 else "")
                       for c in ctx.get("caches", []))
    lines = [
        f"- CPU: {model}; {ctx.get('num_cpus', '?')} hardware threads at {ctx.get('mhz_per_cpu', '?')} MHz "
        f"(nominal); caches: {caches or 'unknown'}",
        f"- SIMD flags: {flags or 'unknown'}",
    ]
    dates = sorted({c.get("date", "")[:19] for c in contexts if c.get("date")})
    if dates:
        lines.append(f"- measured: {dates[0]}" + (f" .. {dates[-1]}" if dates[-1] != dates[0] else "") + " (UTC)")
    peer_ctx = next((c for c in contexts if c.get("onednn_version") or c.get("eigen_version")), None)
    if peer_ctx:
        isas = ", ".join(f"{c['onednn_isa']} in {c['_file']}" for c in contexts if c.get("onednn_isa"))
        lines.append(f"- peers: oneDNN {peer_ctx.get('onednn_version', 'not built')} (effective ISA: {isas or '?'}), "
                     f"Eigen {peer_ctx.get('eigen_version', '?')}")
    shapes = f"N = K = {ctx.get('tcomp_n', '?')}"
    if ctx.get("tcomp_quick") == "1":
        shapes += " (TCOMP_BENCH_QUICK=1: smoke-sized shapes, not representative)"
    lines.append(f"- shapes: {shapes}; cold weights rotate over a pool of > {ctx.get('tcomp_cold_pool_mib', '?')} MiB "
                 f"of copies (max(256 MiB, 2 x L3))")
    if any(c.get("library_build_type") == "debug" for c in contexts):
        lines.append("- Google Benchmark reports its own library as a debug build (Debian's package); the timed "
                     "code is tcomp's and the peers', compiled in the build's own configuration")
    loads = [f"{c['_file']} {c['load_avg'][0]:.1f}" for c in contexts if c.get("load_avg")]
    if loads:
        lines.append(f"- load average when each file started (2 threads on a 2-core host are disturbed by any other "
                     f"load): {', '.join(loads)}")
    if peer_ctx and peer_ctx.get("eigen_simd"):
        lines.append(f"- Eigen SIMD: {peer_ctx['eigen_simd']}")
    return lines


def human_bytes(n):
    for unit, size in (("GiB", 1 << 30), ("MiB", 1 << 20), ("KiB", 1 << 10)):
        if n >= size:
            return f"{n / size:g} {unit}"
    return f"{n} B"


def cpuinfo_field(field):
    try:
        with open("/proc/cpuinfo") as f:
            for line in f:
                k, _, v = line.partition(":")
                if k.strip() == field:
                    return v.strip()
    except OSError:
        pass
    return ""


def limits_section(limits, errors):
    names = [n for n in LIMIT_DESCRIPTIONS if any(k[0] == n for k in limits) or f"limits/{n}/threads:1" in errors]
    names += sorted({k[0] for k in limits} - set(LIMIT_DESCRIPTIONS))
    threads = sorted({k[1] for k in limits} | {1, 2})
    out = ["| limit | unit | " + " | ".join(f"{t} thread{'s' if t > 1 else ''}" for t in threads) + " | measured with |",
           "|---|---|" + "---:|" * len(threads) + "---|"]
    for n in names:
        unit = "GB/s" if n == "dram_read" else "GOP/s"
        cells, label = [], ""
        for t in threads:
            entry = limits.get((n, t))
            if entry:
                cells.append(fmt_spread(entry[0]))
                label = label or entry[1]
            else:
                err = errors.get(f"limits/{n}/threads:{t}")
                cells.append("skipped" if err else "—")
                label = label or (err or "")
        out.append(f"| {LIMIT_DESCRIPTIONS.get(n, n)} | {unit} | " + " | ".join(cells) + f" | {label} |")
    return out


def gemm_tables(rows, limits):
    out = []
    for m in sorted({r.m for r in rows}):
        for t in sorted({r.threads for r in rows if r.m == m}):
            sel = sorted((r for r in rows if r.m == m and r.threads == t), key=row_sort_key)
            if not sel:
                continue
            small = m <= 16
            bw = dram(limits, t)
            out.append(f"### M = {m}, {t} thread{'s' if t > 1 else ''}")
            out.append("")
            head = "| suite / variant | weights | ms median (min–max) | GOP/s | % of peak | peak used |"
            sep = "|---|---|---:|---:|---:|---|"
            if small:
                head += " weight GB/s | % of DRAM read |"
                sep += "---:|---:|"
            out += [head, sep]
            for r in sel:
                what, peak = matching_peak(limits, r)
                line = (f"| {r.key} | {'cold' if r.cold else 'hot'} | {fmt_spread(r.ms)} | {fmt(r.gops.median)} | "
                        f"{pct(r.gops.median, peak)} | {what or '—'} |")
                if small:
                    dram_pct = pct(r.wgbps.median, bw) if r.cold else "(cached)"
                    line += f" {fmt(r.wgbps.median)} | {dram_pct} |"
                out.append(line)
            out.append("")
    return out


# ----------------------------------------------------------------------------------------------- targets

def best(rows, suite, m, threads, cold, variant=None):
    """The fastest row of `suite` (any variant, or variant matching the regex) at (m, threads, cold)."""
    cand = [r for r in rows if r.suite == suite and r.m == m and r.threads == threads and r.cold == cold
            and r.gops.median is not None and (variant is None or re.search(variant, r.variant))]
    return max(cand, key=lambda r: r.gops.median, default=None)


def ours(rows):
    return sorted({r.suite for r in rows if not is_peer(r)})


def targets_section(rows, limits):
    """Ratios the CPU speed targets need, from whatever rows exist; 'not measured' otherwise."""
    items = []  # (what, value, rows used)

    def ratio(label, a, b, how="GOP/s ratio"):
        if a and b:
            items.append((label, f"{a.gops.median / b.gops.median:.2f}x ({how})", f"{a.key} / {b.key}"))
        else:
            items.append((label, "not measured", ""))

    def of_peak(label, r):
        if r is None:
            items.append((label, "not measured", ""))
            return
        what, peak = matching_peak(limits, r)
        items.append((label, pct(r.gops.median, peak) + f" of {what}" if peak else "no peak measured", r.key))

    onednn_variants = sorted({r.variant for r in rows if r.suite == "peer" and r.variant.startswith("onednn_u8s8")})
    for m in (128, 512):
        for v in onednn_variants or ["onednn_u8s8_f32"]:
            peer = best(rows, "peer", m, 2, False, "^" + re.escape(v) + "$")
            ratio(f"W8A8 vs oneDNN {v}, M = {m}, 2 threads, hot", best(rows, "w8a8", m, 2, False), peer)
    of_peak("W4A8 M = 512, 2 threads, hot: % of int8 dot peak", best(rows, "w4a8", 512, 2, False))
    for s in ("w8a8", "w4a8"):
        of_peak(f"{s.upper()} M = 16, 2 threads, cold: % of peak", best(rows, s, 16, 2, True))
    for s in ours(rows) or ["w8a8", "w4a8"]:
        for t in (1, 2):
            r = best(rows, s, 1, t, True)
            bw = dram(limits, t)
            if r and bw:
                items.append((f"{s} GEMV (M = 1) cold, {t} thread{'s' if t > 1 else ''}: % of DRAM read",
                              f"{pct(r.wgbps.median, bw)} ({fmt(r.wgbps.median)} of {fmt(bw)} GB/s)", r.key))
            else:
                items.append((f"{s} GEMV (M = 1) cold, {t} thread{'s' if t > 1 else ''}: % of DRAM read",
                              "not measured", ""))
    for m, cold in ((512, False), (1, True)):
        ratio(f"W1A1 vs W8A8 MAC rate, M = {m}, 2 threads, {'cold' if cold else 'hot'}",
              best(rows, "w1a1", m, 2, cold), best(rows, "w8a8", m, 2, cold))
    for t in (1, 2):
        sp, dn = best(rows, "w8a8_2of4", 1, t, True), best(rows, "w8a8", 1, t, True)
        label = f"2:4 W8A8 vs dense W8A8 GEMV (M = 1) cold, {t} thread{'s' if t > 1 else ''}: speed-up"
        if sp and dn:
            items.append((label, f"{dn.ms.median / sp.ms.median:.2f}x (dense ms / sparse ms)", f"{sp.key} vs {dn.key}"))
        else:
            items.append((label, "not measured", ""))
    for s in ours(rows) or ["w8a8"]:
        for m, cold in ((512, False), (1, True)):
            one, two = best(rows, s, m, 1, cold), best(rows, s, m, 2, cold)
            label = f"{s} 2 threads vs 1 thread, M = {m}, {'cold' if cold else 'hot'}"
            if one and two:
                items.append((label, f"{two.gops.median / one.gops.median:.2f}x", two.key))
            else:
                items.append((label, "not measured", ""))
    out = ["| what | value | rows |", "|---|---|---|"]
    out += [f"| {a} | {b} | {c} |" for a, b, c in items]
    return out


# ----------------------------------------------------------------------------------------------- PNG drawing

# 5x7 font, one byte per column (bit 0 = top row), the classic HD44780-style glyphs.
FONT = {
    " ": (0x00, 0x00, 0x00, 0x00, 0x00), "!": (0x00, 0x00, 0x5F, 0x00, 0x00), "%": (0x23, 0x13, 0x08, 0x64, 0x62),
    "(": (0x00, 0x1C, 0x22, 0x41, 0x00), ")": (0x00, 0x41, 0x22, 0x1C, 0x00), "*": (0x14, 0x08, 0x3E, 0x08, 0x14),
    "+": (0x08, 0x08, 0x3E, 0x08, 0x08), ",": (0x00, 0x50, 0x30, 0x00, 0x00), "-": (0x08, 0x08, 0x08, 0x08, 0x08),
    ".": (0x00, 0x60, 0x60, 0x00, 0x00), "/": (0x20, 0x10, 0x08, 0x04, 0x02), ":": (0x00, 0x36, 0x36, 0x00, 0x00),
    "<": (0x08, 0x14, 0x22, 0x41, 0x00), "=": (0x14, 0x14, 0x14, 0x14, 0x14), ">": (0x00, 0x41, 0x22, 0x14, 0x08),
    "_": (0x40, 0x40, 0x40, 0x40, 0x40), "x": (0x44, 0x28, 0x10, 0x28, 0x44), "@": (0x32, 0x49, 0x79, 0x41, 0x3E),
    "?": (0x02, 0x01, 0x51, 0x09, 0x06), "[": (0x00, 0x7F, 0x41, 0x41, 0x00), "]": (0x00, 0x41, 0x41, 0x7F, 0x00),
    "#": (0x14, 0x7F, 0x14, 0x7F, 0x14), "'": (0x00, 0x05, 0x03, 0x00, 0x00), "|": (0x00, 0x00, 0x7F, 0x00, 0x00),
    "&": (0x36, 0x49, 0x55, 0x22, 0x50), '"': (0x00, 0x07, 0x00, 0x07, 0x00), "^": (0x04, 0x02, 0x01, 0x02, 0x04),
    "0": (0x3E, 0x51, 0x49, 0x45, 0x3E), "1": (0x00, 0x42, 0x7F, 0x40, 0x00), "2": (0x42, 0x61, 0x51, 0x49, 0x46),
    "3": (0x21, 0x41, 0x45, 0x4B, 0x31), "4": (0x18, 0x14, 0x12, 0x7F, 0x10), "5": (0x27, 0x45, 0x45, 0x45, 0x39),
    "6": (0x3C, 0x4A, 0x49, 0x49, 0x30), "7": (0x01, 0x71, 0x09, 0x05, 0x03), "8": (0x36, 0x49, 0x49, 0x49, 0x36),
    "9": (0x06, 0x49, 0x49, 0x29, 0x1E),
    "A": (0x7E, 0x11, 0x11, 0x11, 0x7E), "B": (0x7F, 0x49, 0x49, 0x49, 0x36), "C": (0x3E, 0x41, 0x41, 0x41, 0x22),
    "D": (0x7F, 0x41, 0x41, 0x22, 0x1C), "E": (0x7F, 0x49, 0x49, 0x49, 0x41), "F": (0x7F, 0x09, 0x09, 0x01, 0x01),
    "G": (0x3E, 0x41, 0x41, 0x51, 0x32), "H": (0x7F, 0x08, 0x08, 0x08, 0x7F), "I": (0x00, 0x41, 0x7F, 0x41, 0x00),
    "J": (0x20, 0x40, 0x41, 0x3F, 0x01), "K": (0x7F, 0x08, 0x14, 0x22, 0x41), "L": (0x7F, 0x40, 0x40, 0x40, 0x40),
    "M": (0x7F, 0x02, 0x04, 0x02, 0x7F), "N": (0x7F, 0x04, 0x08, 0x10, 0x7F), "O": (0x3E, 0x41, 0x41, 0x41, 0x3E),
    "P": (0x7F, 0x09, 0x09, 0x09, 0x06), "Q": (0x3E, 0x41, 0x51, 0x21, 0x5E), "R": (0x7F, 0x09, 0x19, 0x29, 0x46),
    "S": (0x46, 0x49, 0x49, 0x49, 0x31), "T": (0x01, 0x01, 0x7F, 0x01, 0x01), "U": (0x3F, 0x40, 0x40, 0x40, 0x3F),
    "V": (0x1F, 0x20, 0x40, 0x20, 0x1F), "W": (0x7F, 0x20, 0x18, 0x20, 0x7F), "X": (0x63, 0x14, 0x08, 0x14, 0x63),
    "Y": (0x03, 0x04, 0x78, 0x04, 0x03), "Z": (0x61, 0x51, 0x49, 0x45, 0x43),
    "a": (0x20, 0x54, 0x54, 0x54, 0x78), "b": (0x7F, 0x48, 0x44, 0x44, 0x38), "c": (0x38, 0x44, 0x44, 0x44, 0x20),
    "d": (0x38, 0x44, 0x44, 0x48, 0x7F), "e": (0x38, 0x54, 0x54, 0x54, 0x18), "f": (0x08, 0x7E, 0x09, 0x01, 0x02),
    "g": (0x0C, 0x52, 0x52, 0x52, 0x3E), "h": (0x7F, 0x08, 0x04, 0x04, 0x78), "i": (0x00, 0x44, 0x7D, 0x40, 0x00),
    "j": (0x20, 0x40, 0x44, 0x3D, 0x00), "k": (0x7F, 0x10, 0x28, 0x44, 0x00), "l": (0x00, 0x41, 0x7F, 0x40, 0x00),
    "m": (0x7C, 0x04, 0x18, 0x04, 0x78), "n": (0x7C, 0x08, 0x04, 0x04, 0x78), "o": (0x38, 0x44, 0x44, 0x44, 0x38),
    "p": (0x7C, 0x14, 0x14, 0x14, 0x08), "q": (0x08, 0x14, 0x14, 0x18, 0x7C), "r": (0x7C, 0x08, 0x04, 0x04, 0x08),
    "s": (0x48, 0x54, 0x54, 0x54, 0x20), "t": (0x04, 0x3F, 0x44, 0x40, 0x20), "u": (0x3C, 0x40, 0x40, 0x20, 0x7C),
    "v": (0x1C, 0x20, 0x40, 0x20, 0x1C), "w": (0x3C, 0x40, 0x30, 0x40, 0x3C), "y": (0x0C, 0x50, 0x50, 0x50, 0x3C),
    "z": (0x44, 0x64, 0x54, 0x4C, 0x44),
}

PALETTE = [(31, 119, 180), (255, 127, 14), (44, 160, 44), (214, 39, 40), (148, 103, 189), (140, 86, 75),
           (227, 119, 194), (127, 127, 127), (188, 189, 34), (23, 190, 207), (0, 0, 128), (128, 0, 0)]
BLACK, WHITE, GRID, ROOF, DRAM = (0, 0, 0), (255, 255, 255), (225, 225, 225), (90, 90, 90), (160, 40, 40)


class Canvas:
    def __init__(self, w, h):
        self.w, self.h = w, h
        self.px = bytearray(WHITE * (w * h))
        self.clip = (0, 0, w - 1, h - 1)

    def set(self, x, y, c):
        x0, y0, x1, y1 = self.clip
        if x0 <= x <= x1 and y0 <= y <= y1:
            i = 3 * (y * self.w + x)
            self.px[i:i + 3] = bytes(c)

    def rect(self, x0, y0, x1, y1, c):
        for y in range(max(y0, 0), min(y1, self.h - 1) + 1):
            for x in range(max(x0, 0), min(x1, self.w - 1) + 1):
                self.set(x, y, c)

    def line(self, x0, y0, x1, y1, c, width=1, dash=0):
        x0, y0, x1, y1 = int(round(x0)), int(round(y0)), int(round(x1)), int(round(y1))
        dx, dy = abs(x1 - x0), -abs(y1 - y0)
        sx, sy = (1 if x0 < x1 else -1), (1 if y0 < y1 else -1)
        err, step = dx + dy, 0
        while True:
            if not dash or (step // dash) % 2 == 0:
                for ox in range(-(width // 2), width - width // 2):
                    for oy in range(-(width // 2), width - width // 2):
                        self.set(x0 + ox, y0 + oy, c)
            if x0 == x1 and y0 == y1:
                break
            e2 = 2 * err
            if e2 >= dy:
                err += dy
                x0 += sx
            if e2 <= dx:
                err += dx
                y0 += sy
            step += 1

    def circle(self, cx, cy, r, c, filled=True):
        cx, cy = int(round(cx)), int(round(cy))
        for y in range(-r - 1, r + 2):
            for x in range(-r - 1, r + 2):
                d = math.hypot(x, y)
                if (filled and d <= r + 0.3) or (not filled and r - 1.2 <= d <= r + 0.3):
                    self.set(cx + x, cy + y, c)

    def marker(self, cx, cy, shape, c, filled=True, r=5):
        """shape 0: circle, 1: square, 2: diamond; hollow markers get a 2-pixel outline."""
        if shape == 0:
            self.circle(cx, cy, r, c, filled)
            if not filled:
                self.circle(cx, cy, r - 1, c, filled=False)
            return
        cx, cy = int(round(cx)), int(round(cy))
        for y in range(-r, r + 1):
            for x in range(-r, r + 1):
                d = max(abs(x), abs(y)) if shape == 1 else abs(x) + abs(y)
                lim = r - 1 if shape == 1 else r + 1
                if d <= lim and (filled or d >= lim - 1):
                    self.set(cx + x, cy + y, c)

    def text(self, x, y, s, c=BLACK, scale=2, bg=None):
        """Draws s with its top-left corner at (x, y), over a box of colour bg if given; returns the width."""
        if bg is not None:
            self.rect(x - 3, y - 3, x + text_width(s, scale) + 2, y + 7 * scale + 2, bg)
        for i, ch in enumerate(s):
            cols = FONT.get(ch) or FONT.get(ch.upper()) or FONT.get(ch.lower()) or FONT["?"]
            for cx, bits in enumerate(cols):
                for cy in range(7):
                    if bits >> cy & 1:
                        for a in range(scale):
                            for b in range(scale):
                                self.set(x + (i * 6 + cx) * scale + a, y + cy * scale + b, c)
        return text_width(s, scale)

    def x_ticks(self, X, first, last, step, top, bottom):
        """Vertical grid lines with labels below `bottom` at first, first + step, ... <= last (X: value -> pixel)."""
        v = first
        while v <= last + 1e-9:
            self.line(X(v), top, X(v), bottom, GRID)
            self.text(int(X(v)) - text_width(f"{v:g}") // 2, bottom + 8, f"{v:g}")
            v += step

    def legend_entry(self, x, y, shape, c, label, filled=True, r=5):
        """A marker and its label, the label's top at y."""
        self.marker(x + 14, y + 7, shape, c, filled=filled, r=r)
        self.text(x + 26, y, label, scale=2)

    def save(self, path):
        with open(path, "wb") as f:
            f.write(self.png())

    def png(self):
        raw = b"".join(b"\x00" + bytes(self.px[3 * y * self.w: 3 * (y + 1) * self.w]) for y in range(self.h))

        def chunk(kind, data):
            return struct.pack(">I", len(data)) + kind + data + struct.pack(">I", zlib.crc32(kind + data) & 0xFFFFFFFF)

        return (b"\x89PNG\r\n\x1a\n" + chunk(b"IHDR", struct.pack(">IIBBBBB", self.w, self.h, 8, 2, 0, 0, 0))
                + chunk(b"IDAT", zlib.compress(raw, 9)) + chunk(b"IEND", b""))


def text_width(s, scale=2):
    return len(s) * 6 * scale - scale if s else 0


def si(v):
    """Tick label: 0.1, 1, 10, 100, 1k, 10k ..."""
    if v >= 1000:
        return f"{v / 1000:g}k"
    return f"{v:g}"


def roofline_png(path, rows, limits, contexts, threads=2):
    plotted = [r for r in rows if r.threads == threads and r.intensity and r.gops.median]
    bw = dram(limits, threads)
    roofs = []  # (class, limit name, GOP/s): the best limit of each class, once per value
    for cls, names in PEAK_CLASSES.items():
        vals = [(n, limit_value(limits, n, threads)) for n in names]
        vals = [(n, v) for n, v in vals if v]
        if vals:
            n, v = max(vals, key=lambda nv: nv[1])
            if all(abs(v - r[2]) > 1e-9 for r in roofs):
                roofs.append((cls, n, v))
    xs = [r.intensity for r in plotted] + [v / bw for _, _, v in roofs if bw]
    ys = [r.gops.median for r in plotted] + [v for _, _, v in roofs]
    if not xs or not ys:
        xs, ys = [1.0, 1000.0], [1.0, 1000.0]
    lx0, lx1 = math.floor(math.log10(min(xs) / 1.5)), math.ceil(math.log10(max(xs) * 1.5))
    ly_lo = min(ys + ([bw * 10 ** lx0] if bw else []))
    ly0, ly1 = math.floor(math.log10(ly_lo / 1.5)), math.ceil(math.log10(max(ys) * 1.5))
    ly0 = max(ly0, ly1 - 6)

    series = []
    for r in sorted(plotted, key=row_sort_key):
        if r.key not in series:
            series.append(r.key)
    legend_lines = series + ["filled: cold, hollow: hot"] + [f"{c} peak: {n} {fmt(v)}" for c, n, v in roofs]
    legend_w = max([text_width(s) for s in legend_lines] + [200]) + 50
    W, H = 760 + legend_w, 620
    L, T, R, B = 90, 60, 640, H - 70
    cv = Canvas(W, H)

    def X(v):
        return L + (math.log10(v) - lx0) / (lx1 - lx0) * (R - L)

    def Y(v):
        return B - (math.log10(v) - ly0) / (ly1 - ly0) * (B - T)

    # grid and ticks
    for d in range(lx0, lx1 + 1):
        for k in range(1, 10):
            v = k * 10 ** d
            if lx0 <= math.log10(v) <= lx1:
                cv.line(X(v), T, X(v), B, GRID if k > 1 else (200, 200, 200))
        lab = si(10 ** d)
        cv.text(int(X(10 ** d) - text_width(lab) / 2), B + 8, lab)
    for d in range(ly0, ly1 + 1):
        for k in range(1, 10):
            v = k * 10 ** d
            if ly0 <= math.log10(v) <= ly1:
                cv.line(L, Y(v), R, Y(v), GRID if k > 1 else (200, 200, 200))
        lab = si(10 ** d)
        cv.text(L - 8 - text_width(lab), int(Y(10 ** d) - 7), lab)
    cv.line(L, T, L, B, BLACK)
    cv.line(L, B, R, B, BLACK)
    cv.line(R, T, R, B, BLACK)
    cv.line(L, T, R, T, BLACK)

    # roofs, clipped to the plot
    cv.clip = (L, T, R, B)
    top = max([v for _, _, v in roofs], default=None)
    if bw:
        x_end = (top / bw) if top else 10 ** lx1
        cv.line(X(10 ** lx0), Y(bw * 10 ** lx0), X(x_end), Y(bw * x_end), DRAM, width=2)
    for _, _, v in roofs:
        x_start = (v / bw) if bw else 10 ** lx0
        cv.line(X(max(x_start, 10 ** lx0)), Y(v), R, Y(v), ROOF, width=2, dash=8)
    # points
    def style(key):
        i = series.index(key)
        return PALETTE[i % len(PALETTE)], (i // len(PALETTE)) % 3

    for r in plotted:
        c, shape = style(r.key)
        cv.marker(X(r.intensity), Y(r.gops.median), shape, c, filled=r.cold)
    cv.clip = (0, 0, W - 1, H - 1)
    # roof values in the right margin, pushed apart when close
    last_y = None
    for cls, _, v in sorted(roofs, key=lambda r: -r[2]):
        y = int(Y(v)) - 7
        if last_y is not None and y < last_y + 18:
            y = last_y + 18
        cv.text(R + 8, y, f"{cls} {fmt(v)}", ROOF)
        last_y = y

    model = next((c.get("tcomp_cpu_model") for c in contexts if c.get("tcomp_cpu_model")), "") or "this host"
    n = next((c.get("tcomp_n") for c in contexts if c.get("tcomp_n")), "?")
    cv.text(L, 14, f"Roofline, {threads} threads, N = K = {n}: {model}")
    cv.text(L, 36, "GOP/s", scale=2)
    xt = "ops per weight byte (2MNK / weight bytes)"
    cv.text(max(4, int((L + R) / 2 - text_width(xt) / 2)), B + 36, xt)
    # legend
    lx, ly = 760, T
    cv.text(lx, ly, "filled: cold, hollow: hot")
    ly += 26
    for s in series:
        c, shape = style(s)
        cv.marker(lx + 8, ly + 7, shape, c)
        cv.text(lx + 22, ly, s)
        ly += 22
    ly += 10
    if bw:
        cv.line(lx, ly + 7, lx + 16, ly + 7, DRAM, width=2)
        cv.text(lx + 22, ly, f"DRAM read {fmt(bw)} GB/s")
        ly += 22
    for cls, n, v in roofs:
        cv.line(lx, ly + 7, lx + 16, ly + 7, ROOF, width=2, dash=4)
        cv.text(lx + 22, ly, f"{cls} peak: {n} {fmt(v)}")
        ly += 22
    with open(path, "wb") as f:
        f.write(cv.png())


# ----------------------------------------------------------------------------------------------- main

def main():
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("results", help="directory of Google Benchmark JSON files")
    ap.add_argument("--out", default="docs/performance.md")
    ap.add_argument("--png", default="docs/roofline.png")
    ap.add_argument("--png-threads", type=int, default=2, help="thread count the roofline plots (default 2)")
    args = ap.parse_args()

    contexts, limits, rows, errors = load(args.results)
    png_rel = os.path.relpath(args.png, os.path.dirname(os.path.abspath(args.out)) or ".")
    md = [
        "# tcomp CPU performance",
        "",
        "Generated by `bench/report/report.py` from the JSON of `bench/run_cpu_suite.sh` "
        f"({datetime.now(timezone.utc).strftime('%Y-%m-%d %H:%M')} UTC). Do not edit by hand: rerun the suite.",
        "",
        "The CUDA kernels' figures (NVIDIA H200 against cuBLAS / cuBLASLt) are in "
        "[performance-cuda.md](performance-cuda.md).",
        "",
        "Y[M x N] = X[M x K] W^T. GOP/s counts 2MNK per second (wall time). Every figure is the median over the "
        "repetitions, with min–max in parentheses. *hot*: one weight copy reused; *cold*: weights rotate over a "
        "pool of copies larger than the caches, so they stream from DRAM as in decoding. *% of peak*: of the "
        "matching limit measured by `bench_limits` in the same run, same thread count (int8 suites and peers "
        "against the int8 dot peak; weight-only and float ones against fp32 FMA; a variant named after an "
        "instruction set against that set's peak). *weight GB/s*: weight bytes per second (for M <= 16), "
        "*% of DRAM read*: of the measured streaming read bandwidth, same thread count (cold rows only; hot rows "
        "read from cache). oneDNN may use AMX on hosts that have it, which is not bound by the vpdpbusd peak.",
        "",
        "## Host",
        "",
    ]
    md += host_section(contexts)
    md += ["", "## Limits (bench_limits)", "",
           "Ops count 2 per multiply-accumulate. Where a limit was measured more than once (before and after the "
           "suites), the better median is kept: other load only ever lowers a peak.", ""]
    md += limits_section(limits, errors)
    md += ["", "## Targets", "", "Computed from the rows below; *not measured* where this run has no such row.", ""]
    md += targets_section(rows, limits)
    # What bounds the targets that were missed: hand-written from a run (analysis can't be computed), kept
    # beside this script and included verbatim, with the date of the run it describes in its own text.
    analysis = os.path.join(os.path.dirname(os.path.abspath(__file__)), "analysis.md")
    if os.path.exists(analysis):
        with open(analysis) as f:
            md += ["", "## What bounds the missed targets", ""] + f.read().rstrip().splitlines()
    md += ["", "## Roofline", "", f"![roofline, {args.png_threads} threads]({png_rel})", "",
           f"{args.png_threads}-thread rows; x: operations per weight byte, y: GOP/s, log-log; the DRAM slope and "
           "the measured peaks of the same thread count.", "", "## GEMM / GEMV", ""]
    md += gemm_tables(rows, limits)
    gemm_errors = {k: v for k, v in errors.items() if GEMM_NAME.match(k)}
    if gemm_errors:
        md += ["## Skipped", ""] + [f"- `{k}`: {v}" for k, v in sorted(gemm_errors.items())] + [""]
    os.makedirs(os.path.dirname(os.path.abspath(args.out)), exist_ok=True)
    with open(args.out, "w") as f:
        f.write("\n".join(md).rstrip() + "\n")
    os.makedirs(os.path.dirname(os.path.abspath(args.png)), exist_ok=True)
    roofline_png(args.png, rows, limits, contexts, args.png_threads)
    print(f"report.py: {len(rows)} GEMM rows, {len(limits)} limits -> {args.out}, {args.png}")


if __name__ == "__main__":
    main()
