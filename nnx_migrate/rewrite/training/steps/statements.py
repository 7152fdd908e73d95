"""Statement lines: what a line's calls asked for (lines to put before it, TODOs, removal),
unsupported APIs on it, `init` results and `mutable=` outputs assigned."""

from __future__ import annotations

import libcst as cst
import libcst.matchers as m

from nnx_migrate.rewrite.names import dotted
from nnx_migrate.rewrite.training.steps.common import _with_todo
from nnx_migrate.rewrite.visitors import FastVisitor, nodes_of_type


class Statements:
    """Part of `TrainingTransformer`: the statement-level callbacks."""

    def visit_SimpleStatementLine(self, node):
        self._stmt_stack.append({"before": [], "todos": [], "drop": False, "unsupported": []})
        return True

    # Unsupported APIs of a statement line, found during the one traversal (what
    # `_unsupported_in` would find visiting the line again; lines do not nest).
    def visit_Name(self, node):
        if self._stmt_stack:
            self._check_unsupported(node)

    def visit_Attribute(self, node):
        if self._stmt_stack:
            self._check_unsupported(node)

    def _check_unsupported(self, node):
        name = dotted(node)
        if name is None or name.partition(".")[0] not in self._unsupported_heads:
            return
        q = self._qualify(node) or ""
        for prefix, why in self.unsupported.items():
            if q == prefix:
                self._stmt_stack[-1]["unsupported"].append((name or q, why))

    def leave_SimpleStatementLine(self, original, updated):
        frame = self._stmt_stack[-1]
        plan = self._plan
        if plan is not None and len(updated.body) == 1:
            small = updated.body[0]
            replaced = self._rewrite_init(small, plan) if isinstance(small, cst.Assign) else None
            if replaced is None and isinstance(small, cst.Assign):
                replaced = self._factory_site(small)
            if replaced is not None:
                updated = updated.with_changes(body=[replaced])
                frame.pop("init_todo", None)
            elif (isinstance(small, cst.Assign) and len(small.targets) == 1 and isinstance(small.targets[0].target, cst.Name)
                  and small.targets[0].target.value in plan.inited and isinstance(small.value, cst.Call)
                  and self.models.lookup(small.value.func) is not None):
                self.changed = True
                self._stmt_stack.pop()
                return cst.RemovalSentinel.REMOVE  # the constructor moves to the init site
        if plan is not None and m.matches(updated, m.SimpleStatementLine(body=[m.Del(target=m.Name())])):
            name = updated.body[0].target.value
            if name in self._init_results and self._init_results[name] != name:
                # `del variables` of an `init` result that the NNX constructor replaced
                self._stmt_stack.pop()
                self.changed = True
                return cst.RemovalSentinel.REMOVE
        self._stmt_stack.pop()
        if frame["drop"]:
            self.changed = True
            if frame["before"]:  # what replaced it (an nnx.update of the statistics)
                return cst.FlattenSentinel([frame["before"][0].with_changes(leading_lines=updated.leading_lines), *frame["before"][1:]])
            return cst.RemovalSentinel.REMOVE
        unsupported = [] if any(isinstance(s, (cst.Import, cst.ImportFrom)) for s in original.body) else list(dict.fromkeys(frame["unsupported"]))
        todos = frame["todos"] + ([frame["init_todo"]] if "init_todo" in frame else []) + unsupported
        for construct, why in todos:
            self.todos.append((original, construct, why))
            updated = _with_todo(updated, why)
        if frame["before"]:
            self.changed = True
            first = frame["before"][0].with_changes(leading_lines=updated.leading_lines)
            return cst.FlattenSentinel([first, *frame["before"][1:], updated.with_changes(leading_lines=[])])
        return updated

    def _unsupported_in(self, stmt: cst.CSTNode) -> list[tuple[str, str]]:
        found = []
        outer = self

        class Find(FastVisitor):
            def visit_Attribute(self, node):
                self._check(node)

            def visit_Name(self, node):
                self._check(node)

            def _check(self, node):
                q = outer._qualify(node) or ""
                for prefix, why in outer.unsupported.items():
                    if q == prefix:
                        found.append((dotted(node) or q, why))

        Find().walk(stmt)
        if any(isinstance(s, (cst.Import, cst.ImportFrom)) for s in getattr(stmt, "body", [])):
            return []
        return list(dict.fromkeys(found))

    def leave_Assign(self, original, updated):
        value = original.value
        if isinstance(value, cst.Call) and isinstance(value.func, cst.Name) and value.func.value in self.flow.model_results and len(original.targets) == 1 and isinstance(original.targets[0].target, cst.Name):
            self._model_values.add(original.targets[0].target.value)
        if id(original.value) in self._captured_calls:
            return self._captured_assign(original, updated)  # sown values read back (sown.py)
        # `out, updates = <module call that had mutable=...>`: NNX updated the model in place.
        if id(original.value) in self._mutable_calls:
            target = updated.targets[0].target
            if isinstance(target, cst.Tuple) and len(target.elements) == 2 and isinstance(target.elements[1].value, cst.Name):
                name = target.elements[1].value.value
                self._removed_names.add(name)
                if self._top_node is not None and sum(1 for n in nodes_of_type(self._top_node, cst.Name) if n.value == name) <= 1:
                    # Linen threw these updates away; the NNX model keeps them (in place)
                    self._stmt_stack[-1]["todos"].append(("mutable=", f"Linen discarded `{name}` (the updated variables, e.g. "
                        "BatchNorm statistics); NNX updates the model in place: call it in eval mode or on a copy if that matters"))
                return updated.with_changes(targets=[updated.targets[0].with_changes(target=target.elements[0].value)])
            if isinstance(target, cst.Name):
                self._stmt_stack[-1]["todos"].append(("mutable=", f"`{target.value}` was (output, updated variables); NNX returns only the output"))
        if self._plan and self._plan.state and len(original.targets) == 1 and isinstance(original.targets[0].target, cst.Name) and m.matches(
                original.value, m.Call(func=m.Attribute(value=m.Name(self._plan.state), attr=m.Name("apply_gradients") | m.Name("replace")))):
            target = original.targets[0].target.value
            if target != self._plan.state:
                self._derived_states.add(target)
                if original.value.func.attr.value == "apply_gradients" and self._applied_gradients:
                    self._stale_state = True  # `state` now names Linen's values before the update
        if self._plan and self._plan.state and len(updated.targets) == 1:
            # `state = state.replace(batch_stats=...)` after the gradients were applied
            if self._applied_gradients and m.matches(updated.value, m.Call(func=m.Attribute(value=m.Name(self._plan.state), attr=m.Name("updated")))) and id(original.value) in self._replace_calls:
                self._stmt_stack[-1]["drop"] = True
        return updated
