#!/usr/bin/env bash
# Install MineStudio 1.1.6 (the paper-scale backend: real Minecraft 1.16.5) into a virtualenv
# without breaking jvla's pins. Idempotent: a second run only re-checks the imports.
#
#   bash scripts/install_minestudio.sh [VENV]      # default VENV: .venv (`make minestudio`)
#
# Why not `pip install minestudio` (measured, docs/minestudio.md):
#   * pyrender==0.1.25 pins networkx==2.2, torch 2.13 needs networkx>=2.5.1 -> ResolutionImpossible;
#     minestudio 1.1.6 never imports pyrender, so it is left out;
#   * opencv-python(-headless)==4.8.0.74 are built against numpy 1.x and fail to import under
#     jvla's numpy 2 (pandas 3 needs numpy>=2); a current opencv-python-headless replaces both;
#   * timm pulls torchvision, and every torchvision wheel on PyPI is a CUDA build that breaks
#     `import torchvision` next to the CPU torch (`operator torchvision::nms does not exist`);
#     timm is installed without dependencies and torchvision is removed on CPU-only torch
#     (only minestudio.models needs it; jvla uses none of MineStudio's policies);
#   * gym3 0.3.3 pins numpy<2 and cffi<2; MineStudio imports only `gym3.types` (pure Python),
#     so gym3 is installed without dependencies (its viewer/libenv deps are never imported);
#   * the `typing` backport is pointless on Python >= 3.5 and left out;
#   * cuda-python>=13 dropped the `cuda.cudart` module that MineStudio's gpu_utils imports.
# Everything goes through constraints.txt, so the CPU torch pin holds and no CUDA torch is pulled.
# This installs the Python package only: the engine (~458 MB), JDK 8 and xvfb are separate steps
# (docs/minestudio.md; the backend's precheck error prints them).
set -euo pipefail

ROOT="$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)"
VENV="${1:-.venv}"
MINESTUDIO_VERSION=1.1.6
PY="$VENV/bin/python"
PIP=("$PY" -m pip install --progress-bar off -c "$ROOT/constraints.txt")
STAMP="$VENV/.minestudio-installed"
RECIPE_ID="minestudio==$MINESTUDIO_VERSION recipe 2"

check_imports() {
  "$PY" - <<'PY'
import importlib, sys
mods = ["minestudio.simulator", "minestudio.simulator.callbacks", "minestudio.utils.vpt_lib.actions",
        "minestudio.utils.vpt_lib.action_mapping", "minestudio.benchmark", "minestudio.data"]
for m in mods:
    importlib.import_module(m)
import numpy, torch
print(f"minestudio OK: imports {', '.join(mods)} (numpy {numpy.__version__}, torch {torch.__version__})")
PY
}

if [ -f "$STAMP" ] && [ "$(cat "$STAMP")" = "$RECIPE_ID" ] && check_imports; then
  echo "minestudio: already installed in $VENV"
  exit 0
fi

[ -x "$PY" ] || python3 -m venv "$VENV"
echo "minestudio: installing $RECIPE_ID into $VENV"

# 1. torch first, from the constraints pin (the CPU wheel here; an installed CUDA build of the same
#    version on a GPU machine satisfies the pin and is kept).
"${PIP[@]}" torch

# 2. MineStudio itself, without its dependency pins.
"${PIP[@]}" --no-deps "minestudio==$MINESTUDIO_VERSION"

# 3. Its requirements (minestudio 1.1.6 Requires-Dist) with the departures listed above.
"${PIP[@]}" \
  av "opencv-python-headless>=4.10,<5" setuptools tqdm numpy requests ipython gym gymnasium imageio cffi \
  hydra_colorlog "hydra-core>=1.3.2" lmdb wandb lightning scipy rich coloredlogs daemoniker lxml \
  "cuda-python>=12,<13" diskcache albumentations einops transformers Pyro4 xmltodict pyglet imgui \
  pyopengl ray "minecraft_data==3.20.0" absl-py dm-tree "x_transformers==0.27.1"
"${PIP[@]}" --no-deps timm gym3

# 4. No CUDA torchvision next to a CPU torch.
if "$PY" -c "import sys, torch; sys.exit(0 if torch.version.cuda is None else 1)"; then
  "$PY" -m pip uninstall -y -q torchvision 2>/dev/null || true
fi
# opencv-python and opencv-python-headless both provide cv2; keep only the headless one.
"$PY" -m pip uninstall -y -q opencv-python 2>/dev/null || true

check_imports
echo "$RECIPE_ID" > "$STAMP"
echo "minestudio: done ($(du -sh "$VENV" | cut -f1) in $VENV)"
