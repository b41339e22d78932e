#!/bin/bash
# Train the embedded model further on a rented one-GPU machine (16 cores) and leave the result
# in $OUT small enough to copy back (fp16 weights, tar split in 15 MB parts; the tokenizer and
# VQ-VAE are the shipped ones). Run from the repository root:
#   M=8 bash chatgen/train/gpu_run.sh            # the shipped model continued for M minutes
#   M=8 LAYERS=12 bash chatgen/train/gpu_run.sh  # a new, deeper model on the shipped tokenizer and VQ-VAE
# The machine's image has torch and transformers but not diffusers: put diffusers and
# importlib_metadata wheels in .whl/ first (`pip download --no-deps ... -d .whl`).
# Training runs under `timeout`, so a stalled run still packs its last checkpoint.
# Back on the build machine, a native checkpoint again (fp32, the shipped tokenizer and VQ-VAE):
#   mkdir -p runs/back && cat model.tar.* | tar -x -C runs/back
#   cp -r chatgen/weights/default/vq chatgen/weights/default/tokenizer.model runs/back/model/
#   python -c "from transformers import AutoModelForCausalLM as M; M.from_pretrained('runs/back/model/lm', dtype='float32').save_pretrained('runs/back/model/lm')"
M=${M:-8}; W=${W:-12}; OUT=${OUT:-/tmp/out}
if ls .whl/*.whl >/dev/null 2>&1; then
  python3 -m pip install -q --no-index --no-deps --no-compile --no-cache-dir --upgrade --target /tmp/site .whl/*.whl || exit 1
fi
export PYTHONPATH=/tmp/site:$PWD HF_HUB_OFFLINE=1 PYTHONUNBUFFERED=1 TOKENIZERS_PARALLELISM=false
nvidia-smi --query-gpu=name,memory.total --format=csv,noheader; df -h /dev/shm | tail -1; free -g | head -2
FOCUS=pronoun_edit,multi_edit,quantifier_edit,relative_edit,yesno,question,ask_count,ask_where,clarify,absent_edit,impossible_edit
ARGS="--lm-steps 1000000 --minutes $M --people-share 0.5 --focus $FOCUS --focus-share 0.35 --batch-tokens 32768 --max-len 1024 --workers $W"
if [ -n "$LAYERS" ]; then
  mkdir -p runs/gpu/run && cp chatgen/weights/default/tokenizer.model runs/gpu/run/ && cp -r chatgen/weights/default/vq runs/gpu/run/
  ARGS="$ARGS --layers $LAYERS --lr 1.5e-3 --warmup 200 --seed 42"
else
  ARGS="$ARGS --init-from chatgen/weights/default --lr 6e-4 --warmup 100 --seed 41"
fi
timeout $(( ${M%.*} * 60 + 150 )) python3 -m chatgen.cli train --out runs/gpu/model --run-dir runs/gpu/run $ARGS > $OUT/log.txt 2>&1
echo "train exit $?"; free -g | head -2
lm=runs/gpu/model/lm; [ -f $lm/model.safetensors ] || lm=runs/gpu/run/lm  # the last checkpoint if the run did not finish
mkdir -p /tmp/pack/model && cp -r $lm /tmp/pack/model/lm && cp runs/gpu/model/config.json /tmp/pack/model/ 2>/dev/null
python3 - /tmp/pack/model/lm/model.safetensors <<'PY'
import sys
from safetensors.torch import load_file, save_file
w = load_file(sys.argv[1])
save_file({k: v.half() if v.is_floating_point() else v for k, v in w.items()}, sys.argv[1], metadata={"format": "pt"})
PY
tar -cf /tmp/model.tar -C /tmp/pack model && split -b 15M -d /tmp/model.tar $OUT/model.tar.
ls -la $OUT; tail -n 5 $OUT/log.txt
