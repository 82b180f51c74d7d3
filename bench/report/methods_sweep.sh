#!/usr/bin/env bash
# Quality against bits per weight on stories260K, every calibration method, from the command line
# (docs/quantization-methods.md, "Quality against bits"). Calibration: the 160 stories of
# tinystories_calib_tokens; evaluation: the 40 dev stories (disjoint). Writes one CSV row per (policy, method):
#   policy,bits,method,ppl_ratio,kl,top1,seconds
# bits: stored bits per weight of the quantized layers (codes + scales + zero points per group); down_proj
# (K = 172, no group of 32 divides it) stays FP32 in every row, the tied head takes the policy.
#
#   bench/report/methods_sweep.sh [BIN_DIR] > methods.csv      (BIN_DIR default build/release/tools)
#   python3 bench/report/methods_plot.py methods.csv --png docs/quantization-methods.png
set -euo pipefail
cd "$(dirname "$0")/../.."
BIN=${1:-build/release/tools}
S=${TCOMP_SHARED_DIR:-../shared}/models/stories260K
WORK=$(mktemp -d)
trap 'rm -rf "$WORK"' EXIT

"$BIN/tcomp-calibrate" "$S" --data "$S/tinystories_calib_tokens.safetensors" -o "$WORK/st.stats" >&2

# policy:bits (codes + scale bits / 32 + zero-point bits / 32)
POLICIES="w=int4:g32:f16:4.5 w=uint4:asym:g32:f16:4.625 w=int3:g32:f16:3.5 w=uint3:asym:g32:f16:3.594
w=int2:g32:f16:2.5 w=uint2:asym:g32:f16:2.563"
METHODS="rtn imatrix awq gptq awq+gptq"
echo "policy,bits,method,ppl_ratio,kl,top1,seconds"
for entry in $POLICIES; do
  policy=${entry%:*}
  bits=${entry##*:}
  for method in $METHODS; do
    cat > "$WORK/recipe.json" <<JSON
{"default": "$policy", "method": "$method",
 "layers": [{"match": "model.layers.*.mlp.down_proj", "policy": "fp32"}]}
JSON
    start=$(date +%s.%N)
    "$BIN/tcomp-quantize" "$S" "$WORK/q.st" --recipe "$WORK/recipe.json" --stats "$WORK/st.stats" > /dev/null
    end=$(date +%s.%N)
    line=$("$BIN/tcomp-eval" "$S" --compressed "$WORK/q.st" --data "$S/tinystories_dev_tokens.safetensors")
    ratio=$(sed -E 's/.*, x([0-9.]+)\).*/\1/' <<< "$line")
    kl=$(sed -E 's/.*KL\(FP32 \|\| Q\) ([0-9.e+-]+) nats.*/\1/' <<< "$line")
    top1=$(sed -E 's/.*top-1 agreement ([0-9.]+);.*/\1/' <<< "$line")
    printf '%s,%s,%s,%s,%s,%s,%.2f\n' "$policy" "$bits" "$method" "$ratio" "$kl" "$top1" \
      "$(echo "$end - $start" | bc)"
  done
done
