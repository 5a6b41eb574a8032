"""The registry every op family registers its channel rules in, and the small helpers the
rules share. A rule reads its inputs' channel facts from the Context and writes its
outputs'; `rule` refuses a second rule for the same op type rather than overwrite it.
"""

from __future__ import annotations

from typing import Callable

import onnx

from ..context import Context

Rule = Callable[[Context, onnx.NodeProto], None]
RULES: dict[str, Rule] = {}


def rule(*op_types: str):
    def register(fn: Rule) -> Rule:
        for op in op_types:
            if op in RULES:
                raise ValueError(f"duplicate channel rule for {op}")
            RULES[op] = fn
        return fn

    return register


def attr(node, name, default=None):
    for a in node.attribute:
        if a.name == name:
            return onnx.helper.get_attribute_value(a)
    return default


def where(node) -> str:
    return f"{node.op_type} '{node.name}'"


def no_rule(ctx: Context, node) -> None:
    """An op we cannot prove safe: freeze what flows in, mark what flows out unknown."""
    ctx.freeze_inputs(node, f"{where(node)} has no channel rule")


def in_input(ctx: Context, node, k: int):
    return ctx.get(node.input[k]) if len(node.input) > k else None


def pass_through(ctx: Context, node) -> None:
    x = in_input(ctx, node, 0)
    if x is not None and node.output:
        ctx.set_axes(node.output[0], x.axes, x.ids)


# Ops whose rules understand channels spread over several axes (attention heads); any
# other op meeting such channels freezes them.
MULTI_AXIS_OPS = {"Reshape", "Transpose", "Gather", "MatMul", "Softmax", "Mul", "Div", "Add", "Sub",
                  "Cast", "Identity", "Dropout", "Where", "Split", "Squeeze"}
