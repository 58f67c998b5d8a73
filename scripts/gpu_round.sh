#!/usr/bin/env bash
# One training round of the demo model on a GPU lent for minutes, stopped by time.
#
#   scripts/gpu_round.sh OUT_DIR [SECONDS] [STEPS]
#
# It starts from the shipped bundle with the README's recipe for a GPU (batch 128, bf16, workers
# rendering the clips, two-object scenes weighted, the edits' unconditional text, a moving
# average), trains until STEPS (default 20000) or SECONDS of training (default 420, to fit a
# 10-minute command with the start and the export), then exports the bundle (float16) into
# OUT_DIR with the shipped sampling settings; evaluate it where you like:
#
#   python -m engine.demo.eval shapes --model OUT_DIR/shapes_demo.json --n 200 --threads 1
#
# The run folder (its checkpoint) is RUN_DIR, by default a new temporary folder; given one that
# holds a run, the script resumes it for SECONDS more (the same recipe, so the same run). DEVICE,
# BATCH, WORKERS, AUTOCAST, LR, SEED override the recipe (e.g. DEVICE=cpu BATCH=2 WORKERS=0
# AUTOCAST=none to try the script on a CPU).
set -euo pipefail

out=${1:?usage: scripts/gpu_round.sh OUT_DIR [SECONDS] [STEPS]}
out=$(realpath -m "$out")
seconds=${2:-420}
steps=${3:-20000}
run=$(realpath -m "${RUN_DIR:-$(mktemp -d)/run}")
cd "$(dirname "$0")/.."
start=(--init resources/models/shapes_demo.json)
if [ -e "$run/train_state.pt" ]; then
    start=(--resume)
fi

python3 -m engine.demo.train train --out "$run" "${start[@]}" \
    --device "${DEVICE:-cuda}" --autocast "${AUTOCAST:-bf16}" --batch "${BATCH:-128}" \
    --workers "${WORKERS:-12}" --two-objects 0.85 --drop-to-task 0.8 --ema 0.9995 \
    --lr "${LR:-2e-4}" --warmup 200 --min-lr 4e-5 --steps "$steps" --seed "${SEED:-12}" \
    --save-every 120 --stop-after "$seconds"
python3 -m engine.demo.train export "$run" --out "$out" --temperature 0.5 --v2v-null task \
    --v2v-carry 4
python3 - "$out" <<'EOF'
import json, sys
record = json.load(open(f"{sys.argv[1]}/shapes_demo.json"))["training"]
print(f"trained {record['step']} of {record['steps']} steps; bundle in {sys.argv[1]}")
EOF
