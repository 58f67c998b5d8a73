#!/usr/bin/env bash
# Issue 33's sampler benchmark on one GPU: the project's Jacobi sampler against the reference's on
# the same random weights at the released 7B's widths, reduced depth (benchmarks/7b_widths.json),
# 480p 16:9 latents (30 x 52), 4 latent frames, guidance 3.5, with the breakdown of the time.
#
#   bash scripts/gpu_sampler_check.sh [OUT_DIR]
#
# Side by side with a checkout of apple/ml-starflow in ref/ (the run tool: carry ["ref", "wheels"]),
# made on the CPU machine, with the reference's two extra packages:
#   mkdir -p ref && git --git-dir=/work/.mirror/apple+ml-starflow/repo archive HEAD | tar -x -C ref
#   python3 -m pip download -d wheels --no-deps einops tqdm
# Without ref/ it prints the project's figures alone.
set -euo pipefail
out=$(realpath -m "${1:-${OUT:-gpu_sampler_check}}")
cd "$(dirname "$0")/.."
mkdir -p "$out"
reference=()
if [ -f ref/transformer_flow.py ]; then
    python3 -c "import einops, tqdm" 2>/dev/null ||
        python3 -m pip install -q --no-index --find-links wheels einops tqdm
    reference=(--reference ref)
fi
nvidia-smi --query-gpu=name,memory.total,driver_version --format=csv | tee "$out/gpu.txt"
timeout 400 python3 benchmarks/vs_reference.py --device cuda --config benchmarks/7b_widths.json \
    --size 30x52 --frames 4 --repeats 3 --breakdown "${reference[@]}" 2>"$out/log.txt" |
    tee "$out/7b_widths.md"
timeout 120 python3 benchmarks/vs_reference.py --device cuda --repeats 5 "${reference[@]}" \
    2>>"$out/log.txt" | tee "$out/default.md"
