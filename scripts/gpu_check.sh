#!/usr/bin/env bash
# The GPU check (benchmarks/gpu_check.py; README, "GPU check") on a CUDA machine that has nothing but this
# repository and pip: installs what the checks need, then runs them in the time left of GPU_CHECK_DEADLINE_S
# (default 470 s from the start of this script: installs and checks together are meant to end within 8 min).
#   scripts/gpu_check.sh [--only NAME[,NAME]] [--list] [--json] [--out FILE] [--steps N]
#   GPU_CHECK_VLLM=0 / GPU_CHECK_UNSLOTH=0   do not make vLLM's / Unsloth's environment (that check skips)
# Exit codes are gpu_check.py's: 0 passed, 1 a check failed, 2 bad flags, 3 no CUDA device.
set -euo pipefail
cd "$(dirname "$0")/.."

deadline=${GPU_CHECK_DEADLINE_S:-470}
side=.venv/gpu-check  # environments of their own, inside .venv so that git ignores them

# side_env NAME PIP-ARGS...: a venv at $side/NAME with PIP-ARGS installed (log: $side/NAME.log); made once.
side_env() {
  local name=$1 dir=$side/$1 log=$side/$1.log
  shift
  [ -f "$dir/.installed" ] && return 0
  mkdir -p "$side"
  python3 -m venv "$dir" >"$log" 2>&1 &&
    "$dir/bin/python" -m pip install -q --disable-pip-version-check "$@" >>"$log" 2>&1 &&
    touch "$dir/.installed"
}

warn_side() {  # NAME: a side environment that did not install; its check skips
  echo "gpu_check.sh: the $1 environment did not install (see $side/$1.log); its check will skip" >&2
}

vllm_pid="" unsloth_pid=""
if command -v nvidia-smi >/dev/null 2>&1; then
  # vLLM and Unsloth pin other torch / transformers / trl versions than .venv holds, so each gets a venv of
  # its own, installed in the background while .venv installs. pyproject.toml has no vllm extra: vLLM is
  # installed by name, >=0.11 for its V1 engine's `vllm serve` with --data-parallel-size and structured
  # outputs through response_format, what the server engine (plugins/server_engine.py) passes.
  if [ "${GPU_CHECK_VLLM:-1}" != 0 ]; then side_env vllm "vllm>=0.11" & vllm_pid=$!; fi
  # Unsloth's own pins first (the heavy part); ftharness joins it below, once .venv's install is done, so that
  # two editable installs of this checkout never run at once. Same lower bound as the `unsloth` extra.
  if [ "${GPU_CHECK_UNSLOTH:-1}" != 0 ]; then side_env unsloth "unsloth>=2026.10" & unsloth_pid=$!; fi
else
  echo "gpu_check.sh: no nvidia-smi here; skipping the vLLM and Unsloth environments" >&2
fi

# .venv: the `train` extra (torch with CUDA where nvidia-smi exists, transformers, peft, trl, accelerate,
# bitsandbytes for QLoRA) and the embedded model. FSDP runs through accelerate, which the train extra holds.
scripts/bootstrap.sh
# DeepSpeed for the ZeRO-3 check (its ops compile when first used); where pip cannot install it, that check skips.
if [ "${GPU_CHECK_DEEPSPEED:-1}" != 0 ] && ! .venv/bin/python -c 'import deepspeed' 2>/dev/null; then
  mkdir -p "$side"
  .venv/bin/python -m pip install -q --disable-pip-version-check "deepspeed>=0.16" >"$side/deepspeed.log" 2>&1 ||
    echo "gpu_check.sh: DeepSpeed did not install (see $side/deepspeed.log); the zero3-2gpu check will skip" >&2
fi

if [ -n "$unsloth_pid" ]; then
  if wait "$unsloth_pid" && [ ! -f "$side/unsloth/.ftharness" ]; then
    "$side/unsloth/bin/python" -m pip install -q --disable-pip-version-check -e ".[train,unsloth]" \
      >>"$side/unsloth.log" 2>&1 && touch "$side/unsloth/.ftharness" || { warn_side unsloth; rm -rf "$side/unsloth"; }
  elif [ ! -f "$side/unsloth/.installed" ]; then
    warn_side unsloth; rm -rf "$side/unsloth"
  fi
fi
if [ -n "$vllm_pid" ] && ! wait "$vllm_pid"; then
  warn_side vllm; rm -rf "$side/vllm"
fi

if ! .venv/bin/python -c 'import sys, torch; sys.exit(0 if torch.version.cuda else 1)' 2>/dev/null; then
  echo "gpu_check.sh: .venv's torch is a CPU build; on a CUDA machine: .venv/bin/python -m pip install --force-reinstall torch" >&2
fi

left=$((deadline - SECONDS))
[ "$left" -ge 60 ] || left=60
exec .venv/bin/python benchmarks/gpu_check.py --budget "$left" "$@"
