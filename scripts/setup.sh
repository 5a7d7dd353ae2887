#!/usr/bin/env bash
# Sets up tf_causalnl on a fresh machine: a virtual environment in .venv with
# the package (and, with --dev, the test tools), plus the FashionMNIST files
# from Debian's dataset-fashion-mnist package when apt and root are available.
#
#   bash scripts/setup.sh          # the package
#   bash scripts/setup.sh --dev    # the package and the test tools
#
# Idempotent: a second run only checks what is there.
set -euo pipefail
cd "$(dirname "$0")/.."

extras=""
if [[ "${1:-}" == "--dev" ]]; then extras="[dev]"; fi

python=${PYTHON:-python3}
if [[ ! -x .venv/bin/python ]]; then
  echo "setup: creating the virtual environment .venv with $($python --version)"
  "$python" -m venv .venv
fi
.venv/bin/python -m pip install --quiet --upgrade pip
echo "setup: installing tf_causalnl$extras into .venv (first run: about a minute)"
.venv/bin/python -m pip install --quiet --disable-pip-version-check -e ".$extras"

fmnist=/usr/share/datasets/fashion-mnist
if [[ -f "$fmnist/train-images-idx3-ubyte.gz" ]]; then
  echo "setup: FashionMNIST found in $fmnist"
elif command -v apt-get >/dev/null 2>&1 && [[ "$(id -u)" == 0 ]]; then
  echo "setup: installing FashionMNIST (Debian package dataset-fashion-mnist)"
  apt-get update -qq >/dev/null
  DEBIAN_FRONTEND=noninteractive apt-get install -y -qq dataset-fashion-mnist >/dev/null
else
  echo "setup: cannot install dataset-fashion-mnist here (needs apt-get and root)."
  echo "       tf_causalnl will fall back to tensorflow-datasets' download of"
  echo "       fashion_mnist, which needs network access; or, as root:"
  echo "       apt-get install dataset-fashion-mnist"
fi
