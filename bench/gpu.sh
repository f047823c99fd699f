#!/bin/bash
# Every model and speed variant of bench/throughput.py on one GPU, in one call of about 8 minutes.
#
# The GPU machine's image has torch and Lightning but not the pure-Python packages below; copy them
# from this checkout's environment first (into .gpu_site/, ignored by git):
#     bash bench/gpu.sh prepare
# then run it there with .gpu_site carried, e.g. with this workplace's device tool:
#     run(command="bash bench/gpu.sh", carry=[".gpu_site"], timeout_s=560)
# It prints two Markdown tables (and writes them to $OUT, when set): the eager variants with our
# host synchronisations per iteration counted, then the compiled ones (torch.compile, CUDA graphs).
# Each row is printed as soon as it is measured, so a run cut short keeps what it measured.
set -u
cd "$(dirname "$0")/.."
if [ "${1:-}" = prepare ]; then
    python=python3; [ -x .venv/bin/python ] && python=.venv/bin/python
    site=$($python -c "import jsonargparse, os; print(os.path.dirname(os.path.dirname(jsonargparse.__file__)))")
    rm -rf .gpu_site && mkdir -p .gpu_site
    for package in jsonargparse docstring_parser typeshed_client torch_fidelity; do cp -r "$site/$package" .gpu_site/; done
    find .gpu_site -name __pycache__ -prune -exec rm -rf {} +
    du -sh .gpu_site
    exit 0
fi
[ -d .gpu_site ] || { echo "no .gpu_site/: run 'bash bench/gpu.sh prepare' here first and carry .gpu_site" >&2; exit 2; }
out=${OUT:-/tmp/gpu-bench}; mkdir -p "$out"
export PYTHONPATH=$PWD:$PWD/.gpu_site PYTHONUNBUFFERED=1 OMP_NUM_THREADS=8 WANDB_MODE=disabled
export TORCHINDUCTOR_CACHE_DIR=/tmp/inductor TORCHINDUCTOR_COMPILE_THREADS=16  # ours and the plain loop share compiled kernels
nvidia-smi --query-gpu=name,driver_version,memory.total --format=csv,noheader
python3 -c "import torch, pytorch_lightning as pl; print('torch', torch.__version__, 'cuda', torch.version.cuda, 'lightning', pl.__version__)"
# IDGAN-SC first: the paper's protocol is the issue's target (>= 540 it/s); then the others.
models="idgan_sc beta_vae infogan_cr dcgan"
# eager: 4 models x 6 variants x 2 loops x 220 iterations
timeout 230 python3 -m bench.throughput --device cuda --count-syncs --steps 200 --warmup 20 --repeats 1 \
    --models $models --variants default no_sync fused channels_last device_data bf16 2>&1 | grep -E "^(\||device|load)" | tee "$out/eager.md"
# compiled: the first iterations compile (tens of seconds per network on 16 cores)
timeout 270 python3 -m bench.throughput --device cuda --steps 200 --warmup 10 --repeats 1 \
    --models $models --variants all cudagraphs compile 2>&1 | grep -E "^(\||device|load)" | tee "$out/compiled.md"
