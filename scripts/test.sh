#!/usr/bin/env bash
# Installs what the tests need (CPU torch, the project, dev tools) and runs lint + tests.
set -euo pipefail
cd "$(dirname "$0")/.."
python3 -m pip install -q torch==2.13.0 -e ".[dev]"
python3 -m ruff check .
python3 -m ruff format --check .
QT_QPA_PLATFORM=offscreen HF_HUB_OFFLINE=1 python3 -m pytest -q
