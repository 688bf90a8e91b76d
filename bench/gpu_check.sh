#!/usr/bin/env bash
# `make gpu-check`: the device tests and the zoo bench on CUDA, on a machine that has its own
# python3 with torch (CUDA), transformers and pytest, and no network: no virtual environment,
# integrad from the source tree, Captum (a test oracle and the bench's contender) from the
# wheel that `make gpu-wheels` put in .whl/. About 5 minutes on one H200; at most 8.
set -uo pipefail
cd "$(dirname "$0")/.."
PY=${PYTHON:-python3}
SITE=${TMPDIR:-/tmp}/integrad-gpu-site
export PYTHONPATH="$PWD/src:$SITE${PYTHONPATH:+:$PYTHONPATH}" PYTHONUNBUFFERED=1
if ! $PY -c "import captum" 2>/dev/null; then
    ls .whl/captum-*.whl >/dev/null 2>&1 || { echo "no .whl/captum-*.whl: run 'make gpu-wheels' first"; exit 2; }
    $PY -m pip install -q --no-index --no-deps --no-compile --disable-pip-version-check \
        --root-user-action=ignore \
        --upgrade --target "$SITE" .whl/captum-*.whl || exit 2
fi
$PY - <<'PY' || exit 2
import torch
assert torch.cuda.is_available(), "gpu-check needs CUDA"
print(f"torch {torch.__version__}, {torch.cuda.get_device_name()}, "
      f"{torch.cuda.mem_get_info()[0] / 2**30:.0f} GiB free")
PY
# Tests that take the `device` fixture, on CUDA; the chunk policy and half precision.
timeout 200 $PY -m pytest -q -p no:cacheprovider -o addopts="" -k cuda \
    tests/test_memory.py tests/test_engine.py tests/test_integrated_gradients.py \
    tests/test_layer.py tests/test_neuron.py tests/test_noise_tunnel.py \
    tests/test_gradient_shap.py tests/test_expected_gradients.py tests/test_guided.py \
    tests/test_blur.py tests/test_idgi.py tests/test_exact.py tests/test_tolerance.py \
    tests/test_gradients.py tests/test_metrics_curves.py tests/test_text.py
tests=$?
timeout 270 $PY bench/zoo.py --device cuda --quick --show-sweep
bench=$?
echo "gpu-check: tests exit $tests, zoo exit $bench"
exit $(( tests || bench ))
