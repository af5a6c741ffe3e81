#!/usr/bin/env bash
# The full kvs test suite. Installs what it needs, then runs every check CI runs:
#   - system tools the interop tests use (mkvtoolnix, ffmpeg, GStreamer) through apt-get;
#   - a Python venv in .venv with PyAV, numpy, botocore/boto3, pytest, hypothesis, mypy, maturin
#     and pandas;
#   - cargo fmt, clippy (-D warnings), the workspace tests, the fuzz targets over their corpora;
#   - the kvs Python wheel (kvs-py) built with maturin, installed into .venv, and its pytest suite.
# Usage: scripts/test.sh            (from anywhere inside the repository)
# Set KVS_SKIP_INSTALL=1 to use the tools already on PATH without installing anything.
set -euo pipefail
cd "$(dirname "$0")/.."
root=$(pwd)

step() { printf '\n==> %s\n' "$*"; }

# --- system tools ---------------------------------------------------------------------------
# awscli: Debian's AWS CLI for the kvs-server interop tests; it runs on the system Python, so it
# does not constrain the botocore pinned in the venv (no awscli release on PyPI pairs with
# botocore 1.44.8).
apt_packages=(mkvtoolnix ffmpeg gstreamer1.0-tools gstreamer1.0-plugins-base gstreamer1.0-plugins-good
  gstreamer1.0-plugins-bad gstreamer1.0-plugins-ugly gstreamer1.0-libav awscli valgrind g++)
need_apt=0
for tool in mkvinfo mkvmerge ffprobe ffmpeg gst-launch-1.0 aws valgrind g++; do
  command -v "$tool" >/dev/null 2>&1 || need_apt=1
done
# x264enc (plugins-ugly) and h264parse (plugins-bad) let the GStreamer tests use H.264.
for element in matroskamux matroskademux x264enc h264parse avdec_h264; do
  gst-inspect-1.0 "$element" >/dev/null 2>&1 || need_apt=1
done
if [ "${KVS_SKIP_INSTALL:-0}" != 1 ] && [ "$need_apt" = 1 ]; then
  step "installing system tools: ${apt_packages[*]}"
  sudo=""
  [ "$(id -u)" = 0 ] || sudo="sudo"
  $sudo apt-get update -qq
  DEBIAN_FRONTEND=noninteractive $sudo apt-get install -y -qq --no-install-recommends "${apt_packages[@]}" >/dev/null
fi

# --- Python venv ----------------------------------------------------------------------------
venv="$root/.venv"
py_packages=(av==18.1.0 numpy==2.4.6 botocore==1.44.8 boto3==1.44.8 pytest==9.2.0 hypothesis==6.170.17
  mypy==2.4.1 maturin==1.16.0 pandas==3.1.1)
if [ "${KVS_SKIP_INSTALL:-0}" != 1 ]; then
  if [ ! -x "$venv/bin/python" ]; then
    step "creating Python venv in .venv"
    python3 -m venv "$venv"
  fi
  if ! "$venv/bin/python" -c "import av, numpy, botocore, boto3, pytest, hypothesis, mypy, pandas" >/dev/null 2>&1 \
    || [ ! -x "$venv/bin/maturin" ]; then
    step "installing Python packages: ${py_packages[*]}"
    "$venv/bin/python" -m pip install -q --disable-pip-version-check "${py_packages[@]}"
  fi
fi
if [ -x "$venv/bin/python" ]; then
  export KVS_PYTHON="$venv/bin/python"
fi

# Every interop test must run here: a missing tool fails the suite instead of skipping.
export KVS_REQUIRE_TOOLS=1
export CARGO_TERM_COLOR=never

step "cargo fmt --check"
cargo fmt --all -- --check

step "cargo clippy (warnings are errors)"
cargo clippy --workspace --all-targets --quiet -- -D warnings

step "cargo test --workspace"
cargo test --workspace 2>&1 | tee "$root/target/test-output.txt" | grep -Ev '^test .* \.\.\. ok$'
status=${PIPESTATUS[0]}
[ "$status" = 0 ] || { echo "cargo test failed"; exit "$status"; }

if [ -f fuzz/Cargo.toml ]; then
  step "fuzz targets: build, then run each over its seed corpus"
  cargo build --quiet --manifest-path fuzz/Cargo.toml
  for target in fuzz/fuzz_targets/*.rs; do
    name=$(basename "$target" .rs)
    corpus="fuzz/corpus/$name"
    if [ -d "$corpus" ] && [ -n "$(ls -A "$corpus")" ]; then
      "fuzz/target/debug/$name" "$corpus"/* >/dev/null 2>&1 || { echo "fuzz target $name failed on its corpus"; exit 1; }
      echo "fuzz $name: $(ls "$corpus" | wc -l) corpus inputs ok"
    else
      echo "fuzz $name: built (no seed corpus)"
    fi
  done
fi

step "kvs-py: build the wheel, install it into .venv, run pytest"
# A dev-profile wheel reuses the artifacts cargo test just built (users get the release profile
# of pyproject.toml through `pip install ./kvs-py`).
rm -rf target/wheels-test
"$venv/bin/maturin" build --quiet -m kvs-py/Cargo.toml --profile dev -i "$venv/bin/python" -o target/wheels-test
"$venv/bin/python" -m pip install -q --disable-pip-version-check --force-reinstall --no-deps target/wheels-test/kvs-*-abi3-*.whl
set +e
"$venv/bin/python" -m pytest kvs-py/tests -q -p no:cacheprovider 2>&1 | tee "$root/target/pytest-output.txt"
py_status=${PIPESTATUS[0]}
set -e
[ "$py_status" = 0 ] || { echo "pytest failed (exit $py_status)"; exit 1; }

total_passed=$(grep -Eo '[0-9]+ passed' "$root/target/test-output.txt" | awk '{s+=$1} END {print s+0}')
total_failed=$(grep -Eo '[0-9]+ failed' "$root/target/test-output.txt" | awk '{s+=$1} END {print s+0}')
py_passed=$(tail -n 1 "$root/target/pytest-output.txt" | grep -Eo '[0-9]+ passed' | awk '{print $1+0}')
total_passed=$((total_passed + ${py_passed:-0}))
echo
echo "${total_passed} passed, ${total_failed} failed"
