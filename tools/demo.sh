#!/usr/bin/env bash
# The main job on a sample this script makes: install, make a clip, encode it to .invr (with the end summary),
# probe the file, decode it to a playable MP4. Everything lands in out/demo/.
#   tools/demo.sh                 # under a minute on two CPU cores, after the install
#   PRESET=medium tools/demo.sh   # any invr-enc preset
set -euo pipefail
cd "$(dirname "$0")/.."
tools/install.sh
bin=.venv/bin
dir=out/demo
mkdir -p "$dir"
preset="${PRESET:-fast}"

echo "== sample: 30 frames of FFmpeg's testsrc2 at 96x96, 25 fps -> $dir/sample.mp4" >&2
"$bin/python" samples/make_sample.py -y --size 96x96 --frames 30 "$dir/sample.mp4"

echo "== invr-enc --preset $preset" >&2
"$bin/invr-enc" -y --preset "$preset" "$dir/sample.mp4" "$dir/sample.invr"

echo "== invr-probe" >&2
"$bin/invr-probe" "$dir/sample.invr"

echo "== invr-dec -> $dir/decoded.mp4" >&2
"$bin/invr-dec" -y "$dir/sample.invr" "$dir/decoded.mp4"

cat >&2 <<MSG
== done. Play it:  ffplay $dir/decoded.mp4
   or straight from the .invr file:  $bin/invr-dec $dir/sample.invr - | ffplay -autoexit -
MSG
