#!/usr/bin/env bash
# The small-scale protocol (README "Small-scale protocol"): Table 3's models x 3 seeds at 32 px on a
# CPU, then the report. Run from the repository root:
#     OMP_NUM_THREADS=1 bash configs/small/run.sh
# Arguments after the script go to every `fit` (e.g. --trainer.max_steps=20 for a smoke test);
# SEEDS (default "0 1 2") and REPORT (default report_small) are read from the environment. Each run
# writes runs/small/<model>/seed_<S> (the configs' folders); a failed seed is reported and the rest
# go on (exit status 1 at the end).
set -u
seeds=(${SEEDS:-0 1 2})
runs=runs/small
report=${REPORT:-report_small}
status=0
fit() {  # fit <config> [overrides...]: one run per seed
  python -m lightning_modules.cli.seeds --seeds "${seeds[@]}" -- fit --config "$@" || status=1
}
here=$(dirname "$0")
fit "$here/beta_vae.yaml" "$@"  # IDGAN-SC stage one
fit "$here/idgan_sc.yaml" \
  --model.init_args.distiller_checkpoint="$runs/beta_vae/seed_{seed}/checkpoints/last.ckpt" "$@"  # stage two on its seed's distiller
for model in infogan infogan_cr idgan_sc_prior factor_vae; do
  fit "$here/$model.yaml" "$@"
done
python -m lightning_modules.cli.report "$runs"/{beta_vae,infogan,infogan_cr,idgan_sc_prior,idgan_sc,factor_vae} \
  --out "$report" --paper || status=1
exit $status
