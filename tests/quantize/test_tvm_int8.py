"""TVM int8: the QDQ patterns of an ORT-quantized model become integer convolutions and
matrix products in Relax, and the compiled artifact's outputs match ONNX Runtime's int8
outputs within one quantization step of the output."""

from __future__ import annotations

import numpy as np
import onnx
import pytest

from edgeprune.quantize import quantize_int8
from edgeprune.quantize.tvm_int8 import lower_qdq
from edgeprune.fidelity import outputs
from tests.helpers import export
from tests.recover.models import conv_net

pytestmark = pytest.mark.slow


@pytest.fixture(scope="module")
def quantized():
    model = export(conv_net(width=8), (1, 3, 8, 8))
    calib = np.random.default_rng(0).standard_normal((16, 3, 8, 8)).astype(np.float32)
    return quantize_int8(model, {"x0": calib}).proto


def _calls(mod, op_name):
    import tvm
    from tvm import relax

    found = []

    class Visitor(relax.PyExprVisitor):
        def visit_call_(self, call):
            if isinstance(call.op, tvm.ir.Op) and call.op.name == op_name:
                found.append(call)
            for a in call.args:
                self.visit_expr(a)

    for func in mod.functions.values():
        if isinstance(func, relax.Function):
            relax.expr_functor.visitor(Visitor)().visit_expr(func)
    return found


def _import(proto: onnx.ModelProto):
    from tvm.relax.frontend import onnx as relax_onnx

    return relax_onnx.from_onnx(proto, keep_params_in_input=False)


def test_every_conv_and_matmul_computes_on_int8(quantized):
    lowered = lower_qdq(_import(quantized))
    kernels = _calls(lowered, "relax.nn.conv2d") + _calls(lowered, "relax.matmul")
    n_quantized = sum(n.op_type in ("Conv", "Gemm", "MatMul") for n in quantized.graph.node)
    assert len(kernels) == n_quantized == 6
    for call in kernels:
        assert [str(a.ty.dtype) for a in call.args] == ["int8", "int8"]
        assert str(call.ty.dtype) == "int32"


def test_tvm_int8_artifact_matches_ort_int8_within_one_quantization_step(quantized, tmp_path):
    from edgeprune.backends.base import TargetSpec
    from edgeprune.backends.tvm import TvmBackend, run_on_host

    artifact = TvmBackend().compile(quantized, TargetSpec(), tmp_path)
    inits = {t.name: t for t in quantized.graph.initializer}
    out_dq = next(n for n in quantized.graph.node if n.output[0] == quantized.graph.output[0].name)
    step = float(onnx.numpy_helper.to_array(inits[out_dq.input[1]]))
    x = np.random.default_rng(1).standard_normal((8, 1, 3, 8, 8)).astype(np.float32)
    # ONNX Runtime with its optimisations on: the QDQ patterns run as QLinearConv / QGemm
    want = outputs(quantized, {"x0": x[:, 0]})[0]
    got = np.concatenate([next(iter(run_on_host(artifact, {"x0": xi}).values())) for xi in x])
    assert np.abs(got - want).max() <= step * 1.0001
