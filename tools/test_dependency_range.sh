#!/usr/bin/env bash
# Run the test suite against another release of one dependency, without touching .venv: the release
# is installed (no deps) into a target folder that goes first on PYTHONPATH. Used to check the
# lowest and newest versions pyproject.toml claims (results: docs/dependencies.md). The release's own
# requirements must already be met by .venv (compare its METADATA Requires-Dist with `pip list`).
#   tools/test_dependency_range.sh transformers==5.20.0 [pytest args, default: -m "not slow"]
set -euo pipefail
cd "$(dirname "$0")/.."
requirement="$1"; shift
args=("$@"); [ ${#args[@]} -eq 0 ] && args=(-m "not slow")
target="${TMPDIR:-/tmp}/leanformer-dep-$(echo "$requirement" | tr -c 'A-Za-z0-9.\n' '_')"
rm -rf "$target"
.venv/bin/python -m pip install -q --no-deps --target "$target" "$requirement"
echo "testing with $requirement (from $target)"
PYTHONPATH="$target:$PWD/src" HF_HUB_OFFLINE=1 TOKENIZERS_PARALLELISM=false .venv/bin/python -m pytest -q "${args[@]}" tests
