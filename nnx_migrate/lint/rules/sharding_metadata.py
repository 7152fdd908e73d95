from __future__ import annotations

import re

import libcst as cst

from nnx_migrate.lint.rule import Invalid, LintRule, Valid


class ShardingMetadataName(LintRule):
    """Variable metadata named `sharding=` or `sharding_names=` instead of `out_sharding=`.

    ## What it does
    Finds the keywords `sharding=` and `sharding_names=` given to an NNX Variable
    (`nnx.Param(x, sharding=...)`, any `nnx.Variable` type or a subclass defined in the
    file) or to `nnx.with_metadata(init, sharding=...)`, and reads of
    `variable.sharding_names` on a Variable known from its construction. Other functions'
    `sharding=` (`jax.device_put`, `jax.ShapeDtypeStruct`, `nnx.with_partitioning`'s own
    parameter) are never touched.

    ## Why
    Flax 0.12.4 renamed the metadata to `out_sharding`: the old names still work but emit
    `DeprecationWarning: 'sharding' is deprecated, use 'out_sharding' instead.`

    ## Fix safety
    Safe: Flax itself maps the old names to `out_sharding` before anything reads them, so
    the new keyword (and `variable.out_sharding` for `variable.sharding_names`) stores and
    returns exactly the same value.
    """

    CODE = "NNX010"
    NAME = "sharding-metadata-name"
    SUMMARY = "`sharding=`/`sharding_names=` Variable metadata is `out_sharding=` since Flax 0.12.4"
    FIX_SAFETY = "safe"
    TRIGGER = re.compile(r"\bsharding(?:_names)?\b")

    VALID = [
        Valid("from flax import nnx\nw = nnx.Param(jnp.ones((2, 2)), out_sharding=('data', None))\n"),
        Valid("import jax\nfrom flax import nnx\ny = jax.device_put(x, sharding=s)\n"),
        Valid("from flax import nnx\ninit = nnx.with_partitioning(nnx.initializers.lecun_normal(), sharding=('data', None))\n"),
    ]
    INVALID = [
        Invalid(
            "from flax import nnx\n"
            "w = nnx.Param(jnp.ones((2, 2)), sharding=('data', None))\n"
            "names = w.sharding_names\n",
            "from flax import nnx\n"
            "w = nnx.Param(jnp.ones((2, 2)), out_sharding=('data', None))\n"
            "names = w.out_sharding\n",
        ),
        Invalid(
            "from flax import nnx\n"
            "init = nnx.with_metadata(nnx.initializers.lecun_normal(), sharding_names=('data', None))\n",
            "from flax import nnx\n"
            "init = nnx.with_metadata(nnx.initializers.lecun_normal(), out_sharding=('data', None))\n",
        ),
    ]

    def visit_Call(self, node: cst.Call) -> None:
        api = self.analysis.api
        if not any(arg.keyword is not None and arg.keyword.value in api.sharding_keywords for arg in node.args):
            return  # decided on the call's own keywords, before any metadata is resolved
        if not (self.analysis.constructs_variable(node) or self.analysis.called_nnx_symbol(node, api.metadata_functions)):
            return
        for arg in node.args:
            if arg.keyword is not None and arg.keyword.value in api.sharding_keywords:
                self.report(
                    arg.keyword,
                    f"`{arg.keyword.value}=` is deprecated since Flax 0.12.4: use `{api.sharding_keyword}=`",
                    replacement=cst.Name(api.sharding_keyword),
                )

    def visit_Attribute(self, node: cst.Attribute) -> None:
        if node.attr.value != "sharding_names" or not isinstance(node.value, cst.Name):
            return
        value = self.analysis.assigned_value(node.value)
        if value is None or not self.analysis.constructs_variable(value):
            return
        keyword = self.analysis.api.sharding_keyword
        self.report(
            node.attr,
            f"`Variable.sharding_names` is deprecated since Flax 0.12.4: use `.{keyword}`",
            replacement=cst.Name(keyword),
        )
