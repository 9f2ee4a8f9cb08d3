#!/usr/bin/env bash
# Install what invrcodec needs into ./.venv (idempotent; a second run installs nothing new).
#
#   tools/install.sh            Python side only: torch (CPU), numpy, PyAV, construct, click, DeepCABAC
#   tools/install.sh --ffmpeg   also Debian's ffmpeg/ffprobe/ffplay (the pipe tests drive the real tools)
#   tools/install.sh --ray      also Ray (the extra `ray`, for invr-enc --ray; about 240 MB; tools/test.sh asks
#                               for it because the tests run a local Ray cluster)
#
# Why each step is explicit:
# * torch is pinned here, not in pyproject.toml: `torch==2.13.0` is the CPU build this machine keeps on disk;
#   an unpinned torch pulls a multi-GB CUDA build. On a GPU machine set INVR_TORCH (e.g. INVR_TORCH=torch)
#   to install the build you want.
# * nncodec (Fraunhofer's DeepCABAC) is installed with --no-deps: its declared dependencies (torchvision,
#   opencv, pandas, scikit-learn, h5py, numpy<2 ...) are unused by its deepCABAC extension, which is all
#   invrcodec imports. Its C++ extension compiles here (about two minutes on two cores).
# * PyAV wheels carry their own FFmpeg libraries; Debian's ffmpeg is only for the tests and the ffplay pipe.
set -euo pipefail
cd "$(dirname "$0")/.."

want_ffmpeg=0
want_ray=0
for arg in "$@"; do
  case "$arg" in
    --ffmpeg) want_ffmpeg=1 ;;
    --ray) want_ray=1 ;;
    *) echo "install.sh: error: unknown option $arg" >&2; exit 2 ;;
  esac
done

step() { printf '== %s\n' "$*" >&2; }

if [ "$want_ffmpeg" = 1 ] && ! { command -v ffmpeg && command -v ffprobe && command -v ffplay; } >/dev/null; then
  step "Debian ffmpeg (ffmpeg, ffprobe, ffplay)"
  if [ "$(id -u)" = 0 ]; then SUDO=""; elif command -v sudo >/dev/null; then SUDO="sudo"; else
    echo "install.sh: error: ffmpeg is missing and this is not root; install Debian's ffmpeg package" >&2; exit 1
  fi
  $SUDO apt-get update -qq
  DEBIAN_FRONTEND=noninteractive $SUDO apt-get install -y -qq ffmpeg >/dev/null
fi

PY="${PYTHON:-python3}"
if [ ! -x .venv/bin/python ]; then
  step "virtual environment .venv ($("$PY" --version))"
  "$PY" -m venv .venv
fi
VPY=.venv/bin/python
pip() { "$VPY" -m pip --disable-pip-version-check -q "$@"; }

if ! "$VPY" -c "import torch" 2>/dev/null; then
  step "PyTorch (${INVR_TORCH:-torch==2.13.0})"
  pip install "${INVR_TORCH:-torch==2.13.0}"
fi

if ! "$VPY" -c "import nncodec.extensions.deepCABAC" 2>/dev/null; then
  step "nncodec 2.1.3 without its dependencies (compiles DeepCABAC, about two minutes)"
  pip install numpy
  pip install --no-deps "nncodec==2.1.3"
fi

step "invrcodec (editable) with test and evaluation extras"
pip install -e '.[test,eval]'

# Ray serves only `invr-enc --ray` (and its tests), so the core install leaves it out.
if [ "$want_ray" = 1 ] && ! "$VPY" -c "import ray" 2>/dev/null; then
  step "Ray, for invr-enc --ray and its tests (extra 'ray')"
  pip install -e '.[ray]'
fi
"$VPY" -c "import invrcodec, torch; print('invrcodec', invrcodec.__version__, '| torch', torch.__version__)" >&2
