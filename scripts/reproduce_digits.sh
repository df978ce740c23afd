#!/usr/bin/env bash
# Standard augmentation vs AugMix vs AugMix + JSD on the quickstart digits, several seeds each, offline, on a CPU:
# each run trains configs/quickstart.yaml (WRN-10-2) with its own train.seed into OUT/<variant>_s<seed>, then
# train.py's end-of-training evaluation writes OUT/<variant>_s<seed>/eval (clean, digits-C generated in memory: all
# 19 corruptions x 5 severities, the 15 benchmark ones in the mean; calibration). One grouped report follows:
# OUT/report.md (mean +- sample std over seeds, commands, versions, machine, wall time), compare.md,
# compare.json and compare_digits-c.png (error per corruption, error bars = std over seeds).
#
# Usage: bash scripts/reproduce_digits.sh
#   SEEDS      default "1 2 3"                        (train.seed of each run)
#   EPOCHS     default 10                             (the quickstart's)
#   VARIANTS   default "standard augmix augmix_jsd"   standard: augment.mode=standard (flip + crop, plain CE);
#                                                     augmix: loss.jsd=false; augmix_jsd: AugMix + 12 x JSD
#   OUT        default runs/reproduce_digits (QUICK=1: runs/reproduce_digits_quick)
#   QUICK=1    smoke run: 1 seed, 1 epoch, 128 training and 100 test images, severity 3 only (a PARTIAL
#              digits-C, marked so in the report; checks the pipeline, never a result to quote)
#   DRY_RUN=1  print the commands without running them; PYTHON default python
# Running it again resumes: finished runs are skipped, an interrupted run continues (train.py --resume auto; the
# evaluator keeps finished cells in <run>/eval/cells), and the report is rewritten from all runs.
set -euo pipefail
cd "$(dirname "$0")/.."
source scripts/common.sh
QUICK="${QUICK:-0}"
if [ "$QUICK" = 1 ]; then
  SEEDS="${SEEDS:-1}"
  EPOCHS="${EPOCHS:-1}"
  quick=(data.limit_train=128 data.limit_test=100 data.val_size=0 eval.limit=100 "eval.severities=[3]")
else
  SEEDS="${SEEDS:-1 2 3}"
  EPOCHS="${EPOCHS:-10}"
  quick=()
fi
VARIANTS="${VARIANTS:-standard augmix augmix_jsd}"
if [ "$QUICK" = 1 ]; then OUT="${OUT:-runs/reproduce_digits_quick}"; else OUT="${OUT:-runs/reproduce_digits}"; fi
need_count EPOCHS "$EPOCHS"
[ -n "${SEEDS// /}" ] || fail "SEEDS is empty; give train seeds, e.g. SEEDS=\"1 2 3\""
for seed in $SEEDS; do
  case "$seed" in ''|*[!0-9]*) fail "SEEDS must be whole numbers separated by spaces; got '$SEEDS'" ;; esac
done
for variant in $VARIANTS; do
  case "$variant" in standard|augmix|augmix_jsd) ;; *) fail "unknown variant $variant (standard | augmix | augmix_jsd)" ;; esac
done
need_config quickstart.yaml

run_finished() {  # <run>/eval/results.json is complete: the final epoch's checkpoint, all three suites, timed
  "$PYTHON" - "$1/eval/results.json" "$EPOCHS" <<'EOF'
import json, sys
from pathlib import Path
path, epochs = Path(sys.argv[1]), int(sys.argv[2])
results = json.loads(path.read_text()) if path.is_file() else {}
done = (results.get("checkpoint", {}).get("epoch") == epochs and "seconds" in results.get("timing", {})
        and {"clean", "digits-c", "calibration"} <= set(results.get("suites", {})))
sys.exit(0 if done else 1)
EOF
}

start=$(date +%s)
if [ "${DRY_RUN:-0}" != 1 ]; then mkdir -p "$OUT"; fi
commands=()
compare=()
labels=()
# seed-major (every variant's seed 1, then seed 2, ...): a run stopped early leaves groups of equal size
for seed in $SEEDS; do
  for variant in $VARIANTS; do
    case "$variant" in
      standard) extra=(augment.mode=standard) ;;
      augmix) extra=(loss.jsd=false) ;;
      augmix_jsd) extra=() ;;
    esac
    dir="$OUT/${variant}_s${seed}"
    cmd=("$PYTHON" train.py --config quickstart.yaml --resume auto "train.out_dir=$dir" "train.seed=$seed"
         "train.epochs=$EPOCHS" ${extra[@]+"${extra[@]}"} ${quick[@]+"${quick[@]}"})
    commands+=("$(printf '%q ' "${cmd[@]}")")
    compare+=("$dir/eval")
    labels+=("$variant")
    if [ "${DRY_RUN:-0}" != 1 ] && run_finished "$dir"; then
      echo "= $dir: finished (eval/results.json at epoch $EPOCHS), skipped"
      continue
    fi
    if [ "${DRY_RUN:-0}" = 1 ]; then run "${cmd[@]}"; else run "${cmd[@]}" 2>&1 | tee -a "$OUT/log.txt"; fi
  done
done
label_list=$(IFS=,; echo "${labels[*]}")
cmp=("$PYTHON" evaluate.py --compare "${compare[@]}" --labels "$label_list" --out "$OUT")
# replace only a comparison this script wrote before; evaluate.py refuses any other file in the way
if grep -qs '"schema": "augmix-robustness/compare"' "$OUT/compare.json"; then cmp+=(--overwrite); fi
commands+=("$(printf '%q ' "${cmp[@]}")")
if [ "${DRY_RUN:-0}" = 1 ]; then run "${cmp[@]}"; exit 0; fi
run "${cmp[@]}" > /dev/null
wall=$(( $(date +%s) - start ))

printf '%s\n' "${commands[@]}" > "$OUT/commands.txt"
"$PYTHON" - "$OUT" "$wall" "$QUICK" "$EPOCHS" "$SEEDS" "$VARIANTS" "${compare[@]}" <<'EOF'
"""OUT/report.md: what was run, on what, how long, then the grouped comparison and the chart."""
import json, platform, subprocess, sys, time
from pathlib import Path

from runtime.environment import environment_record
from runtime.files import atomic_write_text

out, wall, quick, epochs, seeds, variants, evals = Path(sys.argv[1]), int(sys.argv[2]), sys.argv[3] == "1", \
    sys.argv[4], sys.argv[5].split(), sys.argv[6].split(), sys.argv[7:]
env = environment_record("cpu")
try:
    commit = subprocess.run(["git", "describe", "--always", "--dirty"], capture_output=True, text=True,
                            check=True).stdout.strip()
except (OSError, subprocess.CalledProcessError):
    commit = "unknown (not a git checkout)"
rows = []
for folder in evals:
    run = Path(folder).parent
    epoch_s = sum(json.loads(line)["epoch_s"] for line in (run / "metrics.jsonl").read_text().splitlines())
    results = json.loads((Path(folder) / "results.json").read_text())
    rows.append(f"| {run.name} | {epoch_s:.0f} | {results['timing']['seconds']:.0f} |")
digits_c = results["suites"]["digits-c"]
source, cells = digits_c["source"], digits_c["cells"]
n_corruptions, severities = len({c["corruption"] for c in cells}), sorted({c["severity"] for c in cells})
grouped = len(seeds) > 1
lines = ["# Reproduction on digits: standard augmentation vs AugMix vs AugMix + JSD", ""]
if quick:
    lines += ["**QUICK=1 smoke run (1 epoch, 128 training and 100 test images, digits-C at severity 3 only): it "
              "checks the pipeline and shows nothing about AugMix. Run without QUICK for the reproduction.**", ""]
lines += [f"- recipe: `configs/quickstart.yaml` (WRN-10-2, batch 32, SGD lr 0.1 cosine), {epochs} epoch(s); "
          f"variants {', '.join(variants)}; seeds (train.seed) {', '.join(seeds)}; the final-epoch model is evaluated",
          f"- evaluation: clean test set ({results['suites']['clean']['aggregates']['n']} images), digits-C "
          f"generated in memory by corruptions/ (seed {source.get('seed')}, {source.get('preset')} preset; "
          f"{n_corruptions} corruptions x severities {', '.join(map(str, severities))}, the 15 benchmark "
          "corruptions in the mean), calibration on the clean test set",
          f"- machine: {env.get('cpu')}, {env.get('cores')} cores, {platform.system()}; Python {env.get('python')}, "
          f"torch {env.get('torch')}, torchvision {env.get('torchvision')}, numpy {env.get('numpy')}; "
          f"code {commit}",
          f"- wall time of this invocation: {wall / 60:.1f} min (finished runs it skipped are not in it); written "
          f"{time.strftime('%Y-%m-%d %H:%M %Z')}", "",
          "| run | training s (sum of epoch times) | evaluation s (last invocation; reused cells are free) |",
          "|---|---:|---:|", *rows, "",
          "## Results: mean ± sample std over seeds" if grouped else "## Results (one seed: no error bars)", "", (out / "compare.md").read_text().rstrip(), "",
          "![error per corruption](compare_digits-c.png)", "", "## Commands", "", "```",
          (out / "commands.txt").read_text().rstrip(), "```", ""]
atomic_write_text(out / "report.md", "\n".join(lines))
print(f"wrote {out}/report.md, compare.md, compare.json, compare_digits-c.png ({wall / 60:.1f} min)")
EOF
