#!/usr/bin/env bash
# The released 7B's path on one GPU with random bf16 weights: 81 frames at 480p with guidance in
# each memory preset that fits the card (peak memory, seconds per clip, first-frame latency).
#
#   bash scripts/gpu_7b_check.sh [OUT_DIR]
#
# The GPU machine reaches no package index: fetch the 7B's extra packages here first and carry
# the folder (run tool: carry ["wheels"]):
#   python3 -m pip download -d wheels --no-deps "transformers>=5.18,<6" "diffusers>=0.35,<0.43" \
#       tokenizers sentencepiece regex "huggingface-hub>=2" hf-xet
set -euo pipefail
out=$(realpath -m "${1:-${OUT:-gpu_7b_check}}")
cd "$(dirname "$0")/.."
mkdir -p "$out"
if ! python3 -c "import transformers, diffusers, tokenizers" 2>/dev/null; then
    python3 -m pip install -q --no-index --find-links wheels transformers diffusers tokenizers
fi
nvidia-smi --query-gpu=name,memory.total,driver_version --format=csv | tee "$out/gpu.txt"
timeout 540 python3 benchmarks/gpu_7b_check.py --device cuda --frames 81 --guidance 3.5 \
    2>"$out/log.txt" | tee "$out/table.md"
