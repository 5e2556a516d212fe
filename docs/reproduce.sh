#!/usr/bin/env bash
# Regenerates every run and figure of docs/reproduction.md; docs/reproduction.md lists each part's
# wall time on two cores. Each part prints its wall time; parts that train are idempotent (a re-run
# skips finished runs). PARTS selects parts by name, for example PARTS="fig1_paper operations";
# the default runs them all.
set -euo pipefail
cd "$(dirname "$0")/.."
OUT=${OUT:-runs/repro}
W=${WORKERS:-2}
PARTS=${PARTS:-all}
timed() {
  local name=$1; shift
  case " $PARTS " in *" all "*|*" ${name%%/*} "*) ;; *) return 0 ;; esac
  local t0=$SECONDS; "$@"; echo "$name: $((SECONDS - t0)) s"
}

# 1. Figure 1: delayed generalization on x/y with the paper's transformer, 3 seeds, with the learned
#    positions of the preset and with the official code's sinusoidal ones (which lose what they learn).
timed fig1 run_suite --presets fig1_div_transformer --seeds 0,1,2 --workers "$W" --no-curves \
  --grid model.positional=learned,sinusoidal --out "$OUT/fig1_positional"
# 1a. The sinusoidal table scaled down to the size learned positions decay to, 2 seeds.
timed position_scale run_suite --presets fig1_div_transformer --seeds 0,1 --workers "$W" --no-curves \
  --override model.positional=sinusoidal --override model.position_scale=0.01 --out "$OUT/fig1_position_scale"
# 1b. The sinusoidal model against an independent PyTorch one, same weights and batches, float64.
if python3 -c "import torch" 2>/dev/null; then
  timed trajectory python3 benchmarks/trajectory_vs_pytorch.py --override model.positional=sinusoidal \
    --steps 4000 --threads 1 --out "$OUT/trajectory_sinusoidal_float64.csv"
fi
# 2. Time to generalize against the training fraction, x+y, MLP, 3 seeds.
timed fractions run_suite --presets mod_add_grokking --seeds 0,1,2 --workers "$W" --no-curves \
  --grid task.train_fraction=0.15,0.2,0.25,0.3,0.35,0.4,0.5 --override training.steps=6000 \
  --out "$OUT/fractions_add"
# 3. Every operation of the paper against the training fraction, MLP, 2 seeds.
timed operations run_suite --presets mod_add_grokking --seeds 0,1 --workers "$W" --no-curves \
  --grid "task.operation=x+y,x-y,x*y,x/y,x/y if y odd else x-y,x^2+y^2,x^2+xy+y^2,x^2+xy+y^2+x,x^3+xy,x^3+xy^2+y" \
  --grid task.train_fraction=0.3,0.5,0.7 --out "$OUT/operations"
# 4. The interventions of Figure 2 (left) on S5, MLP (dropout needs the transformer; see 5).
for spec in \
    "adamw_wd1:" \
    "adam_no_wd:--override optimizer.name=adam --override optimizer.weight_decay=0" \
    "minibatch_adam:--override optimizer.name=adam --override optimizer.weight_decay=0 --override training.batch_size=512" \
    "grad_noise:--override optimizer.name=adam --override optimizer.weight_decay=0 --override optimizer.grad_noise=0.01" \
    "weight_noise:--override optimizer.name=adam --override optimizer.weight_decay=0 --override optimizer.weight_noise=0.01" \
    "decay_to_init:--override optimizer.decay_toward=init" \
    "lr_3e-3:--override optimizer.lr=3e-3" \
    "lr_3e-2:--override optimizer.lr=3e-2"; do
  name=${spec%%:*}; args=${spec#*:}
  # shellcheck disable=SC2086
  timed "interventions/$name" run_suite --presets perm_s5_grokking --seeds 0 --workers "$W" --no-curves \
    --grid task.train_fraction=0.3,0.5 --override training.steps=2000 $args --out "$OUT/interventions/$name"
done
# 5. The figures that need the transformer, side by side (about 1 h 45 min on two cores):
#    Figure 1 as the paper ran it takes one core for 10^5 steps while the Figure 2 runs use the rest.
W2=$(( W > 1 ? W - 1 : 1 ))
# 5a. Figure 1 as the paper ran it: no weight decay, 10^5 steps, the official sinusoidal positions
#     (their trouble came from weight decay shrinking the embeddings; here nothing decays), 1 seed.
timed fig1_paper run_suite --presets fig1_div_transformer --seeds 0 --workers 1 --no-curves \
  --override optimizer.weight_decay=0 --override model.positional=sinusoidal \
  --override training.steps=100000 --out "$OUT/fig1_paper" &
fig1_paper=$!
# 5b. Figure 2 (right) with the transformer: two symmetric and two asymmetric operations, three
#     fractions, 5,000 steps, 1 seed.
timed transformer_operations run_suite --presets fig1_div_transformer --seeds 0 --workers "$W2" --no-curves \
  --grid "task.operation=x+y,x*y,x-y,x/y" --grid task.train_fraction=0.3,0.5,0.7 \
  --override training.steps=5000 --out "$OUT/transformer_operations"
# 5c. Figure 2 (left) with the transformer on S5: minibatch Adam, the same with residual dropout
#     0.1, and AdamW with weight decay 1, at two fractions, 5,000 steps, 1 seed.
for spec in \
    "minibatch_adam:--override optimizer.name=adam --override optimizer.weight_decay=0" \
    "dropout_0.1:--override optimizer.name=adam --override optimizer.weight_decay=0 --override model.dropout=0.1" \
    "adamw_wd1:"; do
  name=${spec%%:*}; args=${spec#*:}
  # shellcheck disable=SC2086
  timed "transformer_s5/$name" run_suite --presets fig1_div_transformer --seeds 0 --workers "$W2" --no-curves \
    --override task.operation=x.y --grid task.train_fraction=0.3,0.5 --override training.steps=5000 $args \
    --out "$OUT/transformer_s5/$name"
done
wait "$fig1_paper"
# 6. Figures.
timed figures bash -c "
  make_figures $OUT/fig1_positional/fig1_div_transformer/positional=learned/seed_0 --out $OUT/figures/fig1 --figures curves
  make_figures $OUT/fig1_positional --out $OUT/figures/fig1_positional --figures seeds
  make_figures $OUT/fractions_add --out $OUT/figures/fractions_add --figures fraction,best
  make_figures $OUT/operations --out $OUT/figures/operations --figures fraction,best
  make_figures $OUT/interventions --out $OUT/figures/interventions --figures interventions
  make_figures $OUT/fig1_paper --out $OUT/figures/fig1_paper --figures curves
  make_figures $OUT/transformer_operations --out $OUT/figures/transformer_operations --figures fraction,best
  make_figures $OUT/transformer_s5 --out $OUT/figures/transformer_s5 --figures interventions
  make_figures $OUT/operations/mod_add_grokking/operation=x+y,train_fraction=0.3/seed_0 --out $OUT/figures/embeddings --figures embeddings"
