#!/usr/bin/env bash
# Install everything (Debian's ffmpeg and Ray included) and run the test suite. Extra arguments go to pytest,
# e.g. tools/test.sh -k pipes -x
set -euo pipefail
cd "$(dirname "$0")/.."
tools/install.sh --ffmpeg --ray
exec .venv/bin/python -m pytest -q "$@"
