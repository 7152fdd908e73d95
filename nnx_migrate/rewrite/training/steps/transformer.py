"""`TrainingTransformer`: the LibCST transform of the training pass, put together from its
parts (one module each, under this folder)."""

from __future__ import annotations

import libcst as cst

from nnx_migrate.rewrite.edits import FileEdits
from nnx_migrate.rewrite.names import ImportMap
from nnx_migrate.rewrite.training.api_map import TrainingRules
from nnx_migrate.rewrite.training.dataflow import EMPTY, Flow
from nnx_migrate.rewrite.training.models import ModelIndex
from nnx_migrate.rewrite.training.steps.apply import ApplyCalls
from nnx_migrate.rewrite.training.steps.calls import Calls
from nnx_migrate.rewrite.training.steps.common import FunctionPlan
from nnx_migrate.rewrite.training.steps.functions import Functions
from nnx_migrate.rewrite.training.steps.init import InitSites
from nnx_migrate.rewrite.training.steps.plan import PlanFunctions
from nnx_migrate.rewrite.training.steps.sown import SownValues
from nnx_migrate.rewrite.training.steps.state import StateUpdates
from nnx_migrate.rewrite.training.steps.statements import Statements
from nnx_migrate.rewrite.visitors import FastTransformer


# The parts come before FastTransformer: LibCST's transformer defines every callback as a
# no-op that would otherwise hide theirs.
class TrainingTransformer(PlanFunctions, Functions, Statements, InitSites, Calls, ApplyCalls, StateUpdates, SownValues, FastTransformer):
    def __init__(self, imports: ImportMap, rules: TrainingRules, models: ModelIndex, style: str,
                 state_class_names: set[str], helper_name: str, knows_train_state: bool, flow: Flow = EMPTY):
        super().__init__()
        self.state_flow = None  # states.StateFlow: which names hold a train state
        self.flow = flow  # models that cross function boundaries (dataflow.py)
        self.pmapped: set[str] = set()  # functions that run under jax.pmap (pmapped.py)
        self.module: cst.Module | None = None  # the file, for _built_differently
        self._built_with: dict[str, set[str]] | None = None  # callee -> argument texts of its calls
        self.used_apply_fn = False  # a state's `apply_fn` passed on as a value
        self.used_param_grad = ""  # the helper's name, once a gradient is taken over the model (param_grad.py)
        self._model_values: set[str] = set()  # names holding the model a helper's `init` built
        self._callees: set[int] = set()  # ids of original call targets
        self._top: str | None = None  # the enclosing top-level function
        self._top_node: cst.FunctionDef | None = None
        self._params: set[str] = set()  # its parameters
        self._dict_bindings: list[dict[str, cst.Dict]] = []  # per enclosing function: `v = {...}` bound once
        self.imports = imports
        self.rules = rules
        self.models = models
        self.style = style
        self.carried_fields: set[str] = set()  # own fields of the file's TrainState subclasses (run.carried_fields)
        self._stale_state = False  # the step applied the gradients into another name than its state
        self.state_class_names = state_class_names  # local subclasses + the helper
        self.helper_name = helper_name
        self.knows_train_state = knows_train_state
        self.todos: list[tuple[cst.CSTNode, str, str]] = []  # (statement, construct, why)
        self.edits = FileEdits()  # imports the converted code needs, and those it made unused
        self.used_helper = False
        self.changed = False
        self._plan: FunctionPlan | None = None
        self._depth = 0
        self._stmt_stack: list[dict] = []
        self._init_results: dict[str, str] = {}  # init's result name -> model variable
        self._init_foreign: dict[str, tuple[str, ...]] = {}  # init's result name -> Linen classes of other packages its model holds
        self._removed_names: set[str] = set()
        self._applied_gradients = False
        self._applied_bindings: set[str] = set()  # `m = Model(...)` whose `m.apply(...)` became a call of the model
        self._mutable_calls: set[int] = set()  # ids of original calls that had mutable=
        self._captured_calls: set[int] = set()  # ids of original calls that read sown values (sown.py)
        self._captured_names: set[tuple[str | None, str]] = set()  # (function, name) holding what they captured
        self._replace_calls: set[int] = set()  # ids of original `state.replace(...)` calls
        self._functions: list[str] = []  # names of the enclosing functions
        self._aux_removed: set[str] = set()  # differentiated functions whose only aux went away
        self._derived_states: set[str] = set()  # names bound to `<state>.apply_gradients/replace(...)` in this function
        self._consumed_dicts: set[str] = set()  # `variables = {'params': ...}` read by a converted apply in this function
        self.unsupported = rules.unsupported_for(style)
        # Import aliases through which a name can qualify to an unsupported API: names with
        # any other head never match, so the per-statement check skips them cheaply.
        self._unsupported_heads = {
            head for head, full in imports.aliases.items()
            if any(prefix == full or prefix.startswith(full + ".") for prefix in self.unsupported)
        }
