#!/usr/bin/env bash
# The GPU figures in one go, on a machine with one CUDA GPU and the MSD hippocampus data (about 6 minutes):
# the speed benchmark on the GPU, then about 3 minutes of real Med-NCA training through the workflow and its
# evaluation on the test split, printed as one table (and kept in OUT/gpu_check.json).
#
#   benchmarks/gpu_check.sh DATA_DIR [OUT]     # DATA_DIR holds Task04_Hippocampus; OUT: results/gpu_check
#
# DEVICE=cpu runs the same steps on the CPU (a check of the script itself, much slower); TRAIN_SECONDS
# (default 180) sets the training budget. Run it from the repository root with the project installed
# (`make install`, then `source .venv/bin/activate`; a CUDA build of torch for the GPU).
set -euo pipefail

DATA_DIR=${1:?usage: benchmarks/gpu_check.sh DATA_DIR [OUT]}
OUT=${2:-results/gpu_check}
DEVICE=${DEVICE:-cuda}
TRAIN_SECONDS=${TRAIN_SECONDS:-180}
RUN="$OUT/models/hippocampus/med_nca/seed0"
METRICS="$OUT/metrics/hippocampus/med_nca/seed0/summary.json"

if [[ ! -d "$DATA_DIR/Task04_Hippocampus" ]]; then
    echo "gpu_check: $DATA_DIR has no Task04_Hippocampus folder" >&2
    exit 2
fi
if [[ "$DEVICE" == cuda* ]] && ! python -c "import torch, sys; sys.exit(not torch.cuda.is_available())"; then
    echo "gpu_check: torch sees no CUDA GPU (torch $(python -c 'import torch; print(torch.__version__)'))" >&2
    exit 2
fi
mkdir -p "$OUT"

echo "== speed benchmark on $DEVICE" >&2
python benchmarks/speed.py --device "$DEVICE" --repeats 5 --output "$OUT/speed.json" --cases \
    nca16_train nca16_train_bf16 nca16_infer nca16_infer_bf16 nca32_train unet_train

# One epoch first to learn the epoch time, then as many epochs as fit the budget: the second run resumes
# from the first one's checkpoint. That needs the paper's exponential schedule (a cosine schedule is fitted
# to the run's length, so its epoch count is part of a checkpoint's identity).
train() {
    cat >"$OUT/overlay.yaml" <<EOF
models: [med_nca]
model_settings:
  med_nca:
    training: {epochs: $1, checkpoint_every: 1, schedule: exponential, warmup_iterations: 0, snapshot_every: 0}
EOF
    snakemake --cores all --configfile config/hippocampus_cpu.yaml "$OUT/overlay.yaml" \
        --config data_dir="$DATA_DIR" results_dir="$OUT" device="$DEVICE" --quiet rules -- "$2" >&2
}
echo "== training Med-NCA on the real hippocampus data for about $TRAIN_SECONDS s" >&2
train 1 "$RUN/training.json"
EPOCHS=$(python -c "import json, sys; s = json.load(open(sys.argv[1]))['train_seconds']; \
print(max(1, int(float(sys.argv[2]) // s)))" "$RUN/training.json" "$TRAIN_SECONDS")
train "$EPOCHS" "$METRICS"

python - "$OUT" <<'EOF'
import json, sys
from pathlib import Path

out = Path(sys.argv[1])
speed = json.loads((out / "speed.json").read_text())
training = json.loads((out / "models/hippocampus/med_nca/seed0/training.json").read_text())
metrics = json.loads((out / "metrics/hippocampus/med_nca/seed0/summary.json").read_text())
print(f"GPU check on {speed['device']} ({speed.get('gpu', speed['cpu'])}), torch {speed['torch']}")
print(f"{'benchmark case':28} {'seconds':>8} {'peak MB':>8} {'rule':>8}")
for row in speed["cases"]:
    print(f"{row['case']:28} {row['seconds']:>8.3f} {row['peak_memory_mb']:>8.0f} {row.get('cell_rule', ''):>8}")
iterations = training["epochs"] * -(-training["train_slices"] // training["settings"]["batch_size"])
print(f"training: {training['epochs']} epochs, {iterations} iterations of batch "
      f"{training['settings']['batch_size']} in {training['train_seconds']:.0f} s "
      f"(peak {training['peak_memory_mb']:.0f} MB)")
print(f"test Dice {metrics['dice_mean']:.3f} +- {metrics['dice_std']:.3f}, HD95 {metrics['hd95_mean']:.2f}, "
      f"{metrics['cases']} cases, inference {metrics['inference_seconds_mean']:.2f} s per volume")
summary = {"speed": speed, "training": training, "metrics": metrics}
(out / "gpu_check.json").write_text(json.dumps(summary, indent=2) + "\n")
EOF
