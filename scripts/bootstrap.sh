#!/usr/bin/env bash
# Creates .venv and installs Viewfinder with its dev tools, always under constraints.txt (which
# pins the CPU build of torch). Re-runs are cheap: nothing is installed when pyproject.toml and
# constraints.txt are unchanged since the last successful install.
set -euo pipefail
cd "$(dirname "$0")/.."

python=${PYTHON:-}
if [ -z "$python" ]; then
  for candidate in python3.11 python3.12 python3.13 python3; do
    if command -v "$candidate" >/dev/null 2>&1; then python=$candidate; break; fi
  done
fi
"$python" - <<'PY' || { echo "Viewfinder needs Python >= 3.11 (set PYTHON=...)" >&2; exit 1; }
import sys
sys.exit(0 if sys.version_info >= (3, 11) else 1)
PY

[ -x .venv/bin/python ] || "$python" -m venv .venv
stamp=.venv/.viewfinder-installed
want=$(cat pyproject.toml constraints.txt | sha256sum | cut -d' ' -f1)
if [ "$(cat "$stamp" 2>/dev/null)" != "$want" ]; then
  .venv/bin/python -m pip install --quiet --upgrade pip
  .venv/bin/python -m pip install --quiet -c constraints.txt -e ".[dev]"
  if .venv/bin/python -c "import torchvision" >/dev/null 2>&1; then
    echo "torchvision is installed in .venv: it breaks transformers on the CPU torch; remove it" >&2
    exit 1
  fi
  # The same cv2 as opencv-python-headless, but needing libGL: nothing may bring it in (the OCR
  # models come from rapidocr, which depends on the headless build).
  if .venv/bin/python -m pip show --quiet opencv-python >/dev/null 2>&1; then
    echo "opencv-python is installed in .venv: it clashes with opencv-python-headless; remove it" >&2
    exit 1
  fi
  echo "$want" >"$stamp"
fi
