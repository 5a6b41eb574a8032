"""One channel rule per ONNX op kind, in a module per op family; `RULES` maps op type to rule.

An op with no rule freezes every channel it touches, naming itself: unknown ops are never
assumed to be elementwise (that is how silent mis-pruning happens). A new op kind is one
function decorated with `@rule("OpType")` in the family it belongs to (or a new family
module imported below); a rule may import `registry`, `..context` and `..types`, and nothing
above the graph package.
"""

from . import elementwise, layout, normalization, producers, slicing, spatial
from .registry import MULTI_AXIS_OPS, RULES, Rule, no_rule, rule

# importing a family registers its rules: RULES is complete once this package is imported
FAMILIES = (elementwise, layout, normalization, producers, slicing, spatial)

__all__ = ["FAMILIES", "MULTI_AXIS_OPS", "RULES", "Rule", "no_rule", "rule"]
