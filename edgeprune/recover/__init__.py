"""Recovery after pruning, from unlabelled calibration data: least-squares reconstruction
of consumer layers and BatchNorm moment matching (`recover`), classic BN re-estimation
(`reestimate_bn`); the PyTorch path lives in `torch_apply` and `finetune`."""

from .bn import reestimate_bn
from .recover import RecoverOptions, Recovered, Step, recover

__all__ = ["RecoverOptions", "Recovered", "Step", "recover", "reestimate_bn"]
