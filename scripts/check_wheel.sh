#!/usr/bin/env bash
# Build dpodiff's wheel, install it into a fresh venv (CPU torch first) and run the main job offline
# from a temporary folder outside the checkout. Takes a few minutes; not part of the test suite.
#
#   bash scripts/check_wheel.sh            # KEEP=1 keeps the temporary folder for a look afterwards
#
# PYTHON picks the interpreter for the fresh venv (default: python3); TORCH_WHEEL a torch wheel file
# (default: the CPU wheel of torch 2.13.0 in pip's find-links folder, else "torch==2.13.0").
set -euo pipefail
cd "$(dirname "$0")/.."
repo="$(pwd)"
py="$repo/.venv/bin/python"
[ -x "$py" ] || py="${PYTHON:-python3}"

tmp="$(mktemp -d "${TMPDIR:-/tmp}/dpodiff-wheel.XXXXXX")"
if [ "${KEEP:-0}" = 1 ]; then echo "keeping $tmp"; else trap 'rm -rf "$tmp"' EXIT; fi
step() { printf '\n== %s (%ss)\n' "$1" "$SECONDS"; }
# pip, without the warnings about missing entries of a local index in this machine's pip config
quiet() { "$@" 2>&1 | { grep -v "is ignored: it is neither a file nor a directory" || true; }; }

step "build the wheel from a copy of the checkout's files (tracked and untracked, not ignored)"
"$py" -c "import build" 2>/dev/null || quiet "$py" -m pip install -q build
mkdir -p "$tmp/src" "$tmp/dist"
git ls-files -z --cached --others --exclude-standard | while IFS= read -r -d '' f; do
    [ -e "$f" ] && printf '%s\0' "$f"   # skip files deleted in the work tree
done | tar -cf - --null -T - | tar -xf - -C "$tmp/src"
"$py" -m build --wheel --outdir "$tmp/dist" "$tmp/src" > "$tmp/build.log" 2>&1 || { tail -30 "$tmp/build.log"; exit 1; }
wheel="$(ls "$tmp"/dist/dpodiff-*.whl)"
echo "$(basename "$wheel"): $(du -h "$wheel" | cut -f1)"

step "the wheel holds the shipped shapes weights and the WordNet index"
"$py" - "$wheel" <<'EOF'
import sys, zipfile
names = set(zipfile.ZipFile(sys.argv[1]).namelist())
need = [
    "dpodiff/assets/wordnet/wordnet-3.0.json.gz",
    "dpodiff/assets/wordnet/wordnet-3.0-glosses.json.gz",
    "dpodiff/assets/wordnet/LICENSE",
    "dpodiff/assets/clip_tokenizer/vocab.json",
    "dpodiff/assets/bench/report.html.j2",
    "dpodiff/shapes/card.md.j2",
    "dpodiff/shapes/weights/pipeline/model_index.json",
    "dpodiff/shapes/weights/pipeline/text_encoder/config.json",
    "dpodiff/shapes/weights/pipeline/text_encoder/model.safetensors",
    "dpodiff/shapes/weights/pipeline/unet/diffusion_pytorch_model.safetensors",
    "dpodiff/shapes/weights/pipeline/vae/diffusion_pytorch_model.safetensors",
    "dpodiff/shapes/weights/pipeline/tokenizer/tokenizer.json",
    "dpodiff/shapes/weights/scorer/model.safetensors",
    "dpodiff/shapes/weights/scorer/preprocessor_config.json",
]
missing = [n for n in need if n not in names]
if missing:
    sys.exit(f"missing from the wheel: {missing}")
requires = [l for l in zipfile.ZipFile(sys.argv[1]).read(next(n for n in names if n.endswith(".dist-info/METADATA"))).decode().splitlines()
            if l.startswith("Requires-Dist:")]
if any(l.split()[1].lower().startswith("wn") and "extra ==" not in l for l in requires):
    sys.exit(f"the wheel still requires wn: {requires}")
print(f"{len(names)} files, all {len(need)} checked present; {len(requires)} Requires-Dist lines, no bare wn")
EOF

step "a fresh venv: CPU torch first, then the wheel"
"${PYTHON:-python3}" -m venv "$tmp/venv"
vpy="$tmp/venv/bin/python"
quiet "$vpy" -m pip install -q --upgrade pip
torch_req="${TORCH_WHEEL:-}"
if [ -z "$torch_req" ]; then
    links="$("$vpy" -m pip config get global.find-links 2>/dev/null || true)"
    for dir in ${PIP_FIND_LINKS:-} $links; do
        for f in "$dir"/torch-2.13.0+cpu-*.whl; do [ -e "$f" ] && torch_req="$f" && break 2; done
    done
fi
quiet "$vpy" -m pip install -q "${torch_req:-torch==2.13.0}"
quiet "$vpy" -m pip install -q "$wheel"
"$vpy" -c "import torch; assert torch.version.cuda is None, torch.version.cuda; print('torch', torch.__version__)"
if "$vpy" -m pip show -q wn >/dev/null 2>&1; then echo "wn got installed"; exit 1; fi
echo "wn is not installed in the fresh venv"

step "the main job, offline, from a folder outside the checkout"
mkdir -p "$tmp/run" "$tmp/hf"
cd "$tmp/run"
export HF_HUB_OFFLINE=1 TRANSFORMERS_OFFLINE=1 HF_HOME="$tmp/hf" OMP_NUM_THREADS=1 MKL_NUM_THREADS=1 PYTHONNOUSERSITE=1
unset PYTHONPATH
"$vpy" -c "import dpodiff, sys; p = dpodiff.__file__; print('dpodiff from', p); sys.exit(p.startswith('$repo'))"
"$tmp/venv/bin/dpodiff" improve "a crimson circle" --steps 10 --guidance 3 --budget 4 --seeds 1 --out "$tmp/demo" 2>&1 | tail -25
test -s "$tmp/demo/result.json" || { echo "no result.json in $tmp/demo"; ls -la "$tmp/demo" || true; exit 1; }
"$vpy" - "$tmp/demo/result.json" <<'EOF'
import json, sys
r = json.load(open(sys.argv[1]))
shown = {k: r[k] for k in list(r)[:12] if not isinstance(r[k], (dict, list))}
print("result.json:", json.dumps(shown)[:600])
EOF
step "OK: the wheel installs into a fresh venv and the main job runs offline"
