#!/usr/bin/env bash
# The benchmarks on one CUDA GPU, each part's output also written to OUTDIR/<part>.log.
# Usage: bash bench/run_gpu.sh OUTDIR [PART[:SECONDS] ...]   PART: env stage3 codec stage1 loader
# compile (all of them, in that order, by default) or cudagraphs (compile + CUDA graphs, not yet
# measured, so only on request); SECONDS stops that part after so long. Ratios are against the fp32 eager step (or float32
# codec) measured in the same process; see bench/RESULTS.md for recorded figures.
set -uo pipefail
out=${1:?usage: bash bench/run_gpu.sh OUTDIR [PART ...]}
shift
parts=("$@")
[ ${#parts[@]} -eq 0 ] && parts=(env stage3 codec stage1 loader compile)
mkdir -p "$out"
cd "$(dirname "$0")/.."
export PYTHONUNBUFFERED=1
fast=bf16+channels_last+fused+cudnn_benchmark

run() {  # run PART COMMAND...: the command's output to the screen and to OUTDIR/PART.log
    local part=$1
    shift
    echo "== $part: $*"
    timeout -k 10 "$limit" "$@" 2>&1 | tee "$out/$part.log" | grep -v -i -E "warn|tip:|litlogger|available:"
    [ "${PIPESTATUS[0]}" = 124 ] && echo "== $part stopped after $limit s"
}

for spec in "${parts[@]}"; do
    part=${spec%%:*}
    limit=${spec#"$part"}
    limit=${limit#:}
    limit=${limit:-0}  # timeout 0: no limit
    case $part in
        env) run env bash -c 'nvidia-smi --query-gpu=name,memory.total,driver_version,clocks.max.sm --format=csv;
             python3 -c "import torch, lightning, compressai, crdr; print(torch.__version__, torch.version.cuda,
             torch.cuda.get_device_name(), lightning.__version__, compressai.__version__)"' ;;
        stage3) run stage3 python3 bench/train_step.py --device cuda --batch 8 --warmup 3 --steps 10 \
                --workers 4 --profile --variants "fp32,bf16,channels_last,bf16+channels_last,$fast" ;;
        codec) run codec python3 bench/codec.py --device cuda --threads 16 --repeats 3 \
               --sizes 768x512,2048x1365 --parts precision,entropy ;;
        stage1) run stage1 python3 bench/train_step.py --device cuda --experiment crdr_stage1 --batch 8 \
                --warmup 3 --steps 10 --workers 4 --variants "fp32,$fast" ;;
        loader) run loader python3 bench/data_loader.py --workers 0,2,4,8 --batch-size 3 --batches 60 --pin-memory ;;
        # compiled during the warm-up (the first 5 iterations of seed 0 include the no-grad HRRGAN reference pass)
        compile) run compile python3 bench/train_step.py --device cuda --batch 8 --warmup 5 --steps 10 \
                 --workers 4 --profile --variants "fp32,fused+cudnn_benchmark+compile,$fast+compile" ;;
        cudagraphs) run cudagraphs python3 bench/train_step.py --device cuda --batch 8 --warmup 5 --steps 10 \
                    --workers 4 --profile --variants "fp32,fused+cudnn_benchmark+compile+cudagraphs" ;;
        *) echo "unknown part $part (env stage3 codec stage1 loader compile cudagraphs)" >&2; exit 2 ;;
    esac
done
