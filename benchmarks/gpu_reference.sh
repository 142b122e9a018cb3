#!/usr/bin/env bash
# The paper pairs at paper scale on one NVIDIA GPU, in under 8 minutes of device time.
#
#   OUT=/some/folder bash benchmarks/gpu_reference.sh
#
# Installs leakwatt with the gpu extra (TensorFlow with CUDA, nvidia-ml-py), then measures
# paper-imr and paper-utr (smelly and clean, Keras 3, one repetition, no warm-up, plus the
# profile's one idle-baseline run; no control runs: the leak counts come from the CPU study) with
# `--device gpu` under the `gpu` profile, and leaves runs.csv, environment.json,
# the logs and the per-run results under "$OUT/gpu-reference". Why these numbers: a paper-scale
# run is 50 epochs of 50,000 CIFAR-10-shaped images (782 steps of 64 per epoch, ~39,000 steps);
# at ~1-2 ms per step on a current data-centre GPU plus start-up and IMR's per-epoch rebuilds that
# is 1-2 minutes per run, so 4 runs and one idle run fit in 8 minutes; the measure step is stopped at 7 minutes
# whatever happens, and runs.csv keeps every run that finished (it is appended run by run).
set -euo pipefail
: "${OUT:?set OUT to the folder that receives the results}"
ROOT="$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)"
export DVC_NO_ANALYTICS=1 TF_CPP_MIN_LOG_LEVEL=3
python -m pip install --quiet -e "$ROOT[gpu]"
nvidia-smi --query-gpu=name,memory.total,driver_version --format=csv | tee "$OUT/nvidia-smi.csv"
DEST="$OUT/gpu-reference"
status=0
timeout 420 leakwatt measure --params "$ROOT/params.yaml" --profile gpu \
    --pair paper-imr --pair paper-utr --scale paper --device gpu \
    --frameworks keras3 --repetitions 1 --warmup 0 --cooldown 5 --control-runs 0 \
    --out "$DEST" --no-progress || status=$?
if [ "$status" -ne 0 ]; then
    echo "gpu_reference: measure stopped with status $status; $DEST/runs.csv keeps the runs that finished" >&2
fi
ls -l "$DEST/runs.csv" "$DEST/environment.json"
exit "$status"
