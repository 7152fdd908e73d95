"""One Linen module class -> one NNX module class.

The class is read in three steps:
1. discovery (`shape.ClassShape`): dataclass fields, `setup`, the `@nn.compact` method,
   other methods, and the converted base class if it subclasses one;
2. analysis (`walker.BodyWalker`, one per method, in execution order): every submodule
   built (in `setup` or inline in a compact body), the name Linen gives it, the input size
   of its first call (`sizes.SizeOf`), parameters and variables, and every construct the
   tool cannot convert (a TODO site); the results are the data of `model`;
3. generation (`generate/`): an `__init__` (fields, setup body, the submodules and
   parameters hoisted out of the compact body) and the methods with submodule
   constructions replaced by the attributes (`rewriters.MethodRewriter`).
"""

from nnx_migrate.rewrite.classes.context import LINEN_MODULE, FileContext, is_linen_module_base
from nnx_migrate.rewrite.classes.converter import ClassConverter
from nnx_migrate.rewrite.classes.model import (
    AppendChain,
    ClassSummary,
    Factory,
    Field,
    LoopContext,
    Sub,
    VarDef,
)
from nnx_migrate.rewrite.classes.shape import ClassShape
from nnx_migrate.rewrite.classes.walk_calls import OWN_SCOPES
from nnx_migrate.rewrite.classes.walker import BodyWalker

_OWN_SCOPES = OWN_SCOPES  # (tests check these node classes have no subclasses)

__all__ = [
    "LINEN_MODULE", "AppendChain", "BodyWalker", "ClassConverter", "ClassShape", "ClassSummary", "Factory", "Field",
    "FileContext", "LoopContext", "Sub", "VarDef", "is_linen_module_base",
]
