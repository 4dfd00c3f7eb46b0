#!/usr/bin/env bash
# Everything vssm checks on a GPU, in one go (a lent GPU's time is short): the gpu-marked tests, the selective-scan
# benchmark and the models' throughput, with the GPU named in every result.
#
#   bash benchmarks/run_gpu.sh OUT_DIR [MACHINE]
#
# OUT_DIR receives tests.xml, selective_scan_cuda.{csv,md}, triton_tiles.{csv,md}, host_overhead.{csv,md},
# throughput_cuda{,_compiled,_1248}.{csv,md,png} and profile_cuda.md (put it under runs/, which git ignores, or outside the checkout).
# Each step runs even if an earlier one failed; the exit status is the number of failed steps.
# Afterwards, on any machine (it needs no GPU), the cost model's error on this run's throughput rows and its refit:
#   python benchmarks/gpu_model.py --measured OUT_DIR --output OUT_DIR
set -u
out=${1:?usage: run_gpu.sh OUT_DIR [MACHINE]}
mkdir -p "$out"
machine=${2:-"$(nvidia-smi --query-gpu=name,memory.total,driver_version --format=csv,noheader | head -1)"}
export PYTHONUNBUFFERED=1
failed=0
step() {
    echo "== $1"
    shift
    local started=$SECONDS
    "$@" || { echo "!! failed: $*"; failed=$((failed + 1)); }
    echo "== took $((SECONDS - started)) s"
}

step "environment" python -c "import torch, triton, timm; print(torch.__version__, triton.__version__, timm.__version__,
    torch.cuda.get_device_name())"
step "gpu tests" python -m pytest -q -p no:cacheprovider -m gpu -o addopts= --junit-xml="$out/tests.xml" \
    tests/kernels/test_triton_cuda.py tests/kernels/test_triton.py tests/kernels/test_triton_state1.py \
    tests/models/test_golden_cuda.py tests/scans/test_scans_base.py
step "selective-scan benchmark" python benchmarks/bench_selective_scan.py --device cuda --repeats 20 \
    --machine "$machine" --output "$out"
step "triton tiles" python benchmarks/tune_triton.py --machine "$machine" --output "$out"
step "host overhead" python benchmarks/bench_host_overhead.py --device cuda --launch --machine "$machine" \
    --output "$out"
models=(vim_small vmamba_tiny local_vim_tiny local_vssm_tiny mambavision_tiny groupmamba_tiny plainmamba_l1 msvmamba_tiny)
baselines=(deit_small_patch16_224 swin_tiny_patch4_window7_224 convnext_tiny)
step "throughput" python tools/benchmark.py "${models[@]}" --compare "${baselines[@]}" --device cuda \
    --amp bf16 --batch 128 --mode inference train --warmup 5 --repeats 20 --machine "$machine" --output "$out" \
    --name throughput_cuda
step "throughput, compiled" python tools/benchmark.py "${models[@]}" --compare "${baselines[@]}" --device cuda \
    --amp bf16 --batch 128 --mode inference train --compile --warmup 5 --repeats 20 --machine "$machine" \
    --output "$out" --name throughput_cuda_compiled
# The Vim paper's headline: Vim-Ti against DeiT-Ti at 1248 x 1248 (images/s and peak memory).
step "vim at 1248" python tools/benchmark.py vim_tiny --compare deit_tiny_patch16_224 --device cuda --amp bf16 \
    --batch 1 8 --resolution 1248 --mode inference --warmup 3 --repeats 10 --machine "$machine" --output "$out" \
    --name throughput_cuda_1248
step "profile" python benchmarks/profile_gpu.py "${models[@]}" --batch 128 --output "$out" --machine "$machine"
exit $failed
