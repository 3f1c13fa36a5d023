#!/usr/bin/env bash
# Install Televox PBX and its default local models into ./.venv, from nothing.
# Idempotent: a second run only checks what is already there.
set -euo pipefail
cd "$(dirname "$0")/.."

need_apt=()
command -v python3 >/dev/null || need_apt+=(python3)
python3 -c 'import venv, ensurepip' 2>/dev/null || need_apt+=(python3-venv)
command -v cc >/dev/null || need_apt+=(build-essential)
command -v cmake >/dev/null || need_apt+=(cmake)
python3 -c 'import sysconfig,os,sys; sys.exit(0 if os.path.exists(os.path.join(sysconfig.get_paths()["include"],"Python.h")) else 1)' 2>/dev/null || need_apt+=(python3-dev)
# The dashboard's browser tests (marker `browser`) drive Debian's Chromium through Playwright
# (pip, in .[dev]); Playwright never downloads a browser of its own.
[[ -x /usr/bin/chromium ]] || need_apt+=(chromium)
# The store's tests also run on a throw-away PostgreSQL (tests/pg_support.py): Debian's
# server package, started per test session from a temporary folder, never as a service.
compgen -G "/usr/lib/postgresql/*/bin/initdb" >/dev/null || need_apt+=(postgresql)
if ((${#need_apt[@]})); then
  if [[ $(id -u) -eq 0 ]] && command -v apt-get >/dev/null; then
    # Waits for a lock another apt holds (the Asterisk build installs its packages too);
    # a failed install stops here (inside `if`, `a && b` failing would not stop set -e).
    lock=(-o DPkg::Lock::Timeout=600)
    if ! { apt-get "${lock[@]}" update -qq &&
           DEBIAN_FRONTEND=noninteractive apt-get "${lock[@]}" install -y -qq "${need_apt[@]}"; }; then
      echo "setup: installing ${need_apt[*]} with apt-get failed (above)" >&2
      exit 1
    fi
  else
    echo "setup: missing system packages: ${need_apt[*]} (install them with apt-get)" >&2
    exit 1
  fi
fi

# llama-cpp-python has no wheel on PyPI: build it portably (no -march=native), see MODELS.md.
export CMAKE_ARGS="${CMAKE_ARGS:--DLLAVA_BUILD=OFF -DGGML_NATIVE=OFF -DGGML_AVX2=ON -DGGML_FMA=ON -DGGML_F16C=ON -DGGML_BMI2=ON}"
export CMAKE_BUILD_PARALLEL_LEVEL="${CMAKE_BUILD_PARALLEL_LEVEL:-2}"
export HF_HUB_OFFLINE=1 PIP_DISABLE_PIP_VERSION_CHECK=1

[[ -x .venv/bin/python ]] || python3 -m venv .venv
.venv/bin/pip install -q --upgrade pip
.venv/bin/pip install -q -e '.[dev]'

# Smart Turn v3.2 (the end-of-turn model) ships inside the pipecat-ai wheel: fetch that
# wheel only, never install it; the model registry extracts the one ONNX file from it and
# checks its sha256 (models/README.md).
wheels=var/models/.wheels
compgen -G "$wheels/pipecat_ai-1.14.0-*.whl" >/dev/null \
  || .venv/bin/pip download -q --no-deps --only-binary=:all: pipecat-ai==1.14.0 -d "$wheels"
.venv/bin/televox models check >/dev/null || .venv/bin/televox models check  # say what is wrong
