# Sourced by the training and SLURM scripts: print every command before running it, DRY_RUN=1 to print only, and
# input checks that fail before any GPU time is spent.
PYTHON="${PYTHON:-python}"
TORCHRUN="${TORCHRUN:-torchrun}"  # or: "python -m torch.distributed.run"
DATA_ROOT="${AUGMIX_DATA_ROOT:-data}"

run() {  # print the command (shell-quoted), then run it unless DRY_RUN=1
  printf '+'; printf ' %q' "$@"; printf '\n'
  if [ "${DRY_RUN:-0}" != 1 ]; then "$@"; fi
}

fail() { echo "error: $*" >&2; exit 2; }

need_config() {  # a bare name resolves against configs/, as train.py does
  [ -f "$1" ] || [ -f "configs/$1" ] || fail "config $1 not found (looked in . and configs/)"
}

need_dir() {  # need_dir DIR WHAT
  [ -d "$1" ] || fail "$2 $1 does not exist (set AUGMIX_DATA_ROOT, or see README 'Data layout')"
}

need_count() {  # need_count NAME VALUE: a positive integer
  case "$2" in ''|*[!0-9]*|0) fail "$1 must be a positive integer; got '$2'" ;; esac
}
