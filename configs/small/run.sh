#!/usr/bin/env bash
# The small-scale protocol (README "Small-scale protocol"): Table 3's models x 3 seeds at 32 px on a
# 2-core CPU, then the report (measured: 21 min 56 s wall, 40 CPU-minutes, on an otherwise idle 2-core
# CPU; 34 minutes with another job on one core). Run from the repository root:
#     bash configs/small/run.sh
# Two lanes run side by side, one thread each (their output and errors on stdout, each line
# starting with [A] or [B]):
#   A: IDGAN-SC's stage one, its stage two on each seed's distiller, then FactorVAE;
#   B: the GANs whose Q is a trainable head on D: InfoGAN, InfoGAN-CR, then IDGAN-SC without β-VAE
#      continuing each seed's InfoGAN (the §3.1 ablation's arm).
# Arguments after the script go to every `fit` (e.g. --trainer.max_steps=20 for a smoke test);
# SEEDS (default "0 1 2") and REPORT (default report_small) are read from the environment. Each run
# writes runs/small/<model>/seed_<S> (the configs' folders); a failed seed is reported and the rest
# go on (exit status 1 at the end, after the report of the runs that finished).
set -u -o pipefail  # pipefail: a lane's status survives the prefixing of its lines
export OMP_NUM_THREADS=1  # one thread per lane: two lanes fill the two cores
export PYTHONUNBUFFERED=1  # each line as it comes, not a pipe buffer's worth at a time
seeds=(${SEEDS:-0 1 2})
runs=runs/small
report=${REPORT:-report_small}
here=$(dirname "$0")

fit() {  # fit <config> [overrides...]: one run per seed; fails if any seed failed
  python -m lightning_modules.cli.seeds --seeds "${seeds[@]}" -- fit --config "$@"
}
lane_a() {
  local status=0
  fit "$here/beta_vae.yaml" "$@" || status=1  # IDGAN-SC stage one
  fit "$here/idgan_sc.yaml" \
    --model.init_args.distiller_checkpoint="$runs/beta_vae/seed_{seed}/checkpoints/last.ckpt" "$@" || status=1  # stage two on its seed's distiller
  fit "$here/factor_vae.yaml" "$@" || status=1
  return $status
}
lane_b() {
  local status=0
  fit "$here/infogan.yaml" "$@" || status=1
  fit "$here/infogan_cr.yaml" "$@" || status=1
  fit "$here/idgan_sc_prior.yaml" \
    --model.init_args.warm_start="$runs/infogan/seed_{seed}/checkpoints/last.ckpt" "$@" || status=1  # the ablation's arm continues its seed's InfoGAN
  return $status
}

lane_a "$@" 2>&1 | sed -u 's/^/[A] /' & lane_a_pid=$!
lane_b "$@" 2>&1 | sed -u 's/^/[B] /' & lane_b_pid=$!
status=0
wait $lane_a_pid || status=1
wait $lane_b_pid || status=1
python -m lightning_modules.cli.report "$runs"/{beta_vae,infogan,infogan_cr,idgan_sc_prior,idgan_sc,factor_vae} \
  --out "$report" --paper || status=1
exit $status
