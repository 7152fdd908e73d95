"""Attribute names of a class's submodules and variables."""

from __future__ import annotations

import ast
import keyword

from nnx_migrate.naming import auto_list_names, nnx_attribute_name
from nnx_migrate.rewrite.classes.helpers import assigned_self_attrs, class_level_names, plus, times
from nnx_migrate.rewrite.classes.model import LoopContext, Sub
from nnx_migrate.rewrite.sizes import code


class AttributeNames:
    """The NNX attribute names of submodules and variables, and where they differ from Linen's."""

    def _honour_setup_names(self) -> None:
        """`self.query = nn.Dense(..., name='to_q')`, `self.w = self.param('kernel', ...)`:
        Linen stores the layer or variable (and its checkpoint keys) under the Linen name.
        The NNX attribute takes that name too, and the class's own `self.query` uses
        follow, when that cannot change what any code reads (see _linen_name_blocker).
        Otherwise the attribute keeps its name and the key difference is reported."""
        for sub, attr, linen_name, name_node, in_loop in self.setup_names:
            # (a Linen name that is no identifier, `name='0'`: the attribute naming.py maps it to)
            chosen = linen_name if linen_name is None or linen_name.isidentifier() and not keyword.iskeyword(linen_name) else nnx_attribute_name(linen_name)
            why = self._linen_name_blocker(attr, chosen)
            if why is None and (in_loop or sub.alternatives or self.subs_by_attr.get(attr) is not sub):
                why = "the attribute is assigned more than once"
            if why is None:
                self.attr_renames[attr] = chosen
                sub.attr = chosen
                self.subs_by_attr[chosen] = sub
            else:
                sub.problems.append(f"Linen names it {code(name_node)} (name=), the NNX attribute is '{attr}' ({why}): checkpoint keys need renaming")
        for linen_name, attr, node in self.setup_var_names:
            why = self._linen_name_blocker(attr, linen_name)
            if why is None:
                self.attr_renames[attr] = linen_name
            else:
                self.todo(node, f"self.{attr} = self.param/variable('{linen_name}')", f"Linen stores it as '{linen_name}', the NNX attribute is '{attr}' ({why}): checkpoints need a key rename")

    def _linen_name_blocker(self, attr: str, chosen: str | None) -> str | None:
        """Why the setup attribute `attr` cannot be renamed to its Linen name `chosen`
        (None when it can): the name must be a free identifier in the class, the
        attribute assigned once, and no code in the file but this class's own methods may
        read `.<attr>` (another object's `.attr`, or a subclass's `self.attr`)."""
        if chosen is None or not chosen.isidentifier() or keyword.iskeyword(chosen):
            return "it is not a plain identifier"
        taken = {f.name for f in self.shape.fields} | {m.name.value for m in self.shape.methods}
        taken |= class_level_names(self.node.body.body) | set(self.var_attrs) | self.list_attrs | set(self.subs_by_attr)
        if self.shape.base is not None:
            taken |= {f.name for f in self.shape.base.fields}
        if chosen in taken or chosen in self.attr_renames.values():
            return f"'{chosen}' is already a name in the class"
        tree = self.ctx.python_tree()
        if tree is None:
            return "the file's other reads of it cannot be checked"
        own = next((n for n in tree.body if isinstance(n, ast.ClassDef) and n.name == self.name), None)
        if own is None:
            return "the class is not at the top level of the file"
        own_nodes = {id(n) for n in ast.walk(own)}
        stores = 0
        for node in ast.walk(tree):
            if isinstance(node, ast.ClassDef) and node is not own and any(isinstance(b, ast.Name) and b.id == self.name for b in node.bases):
                return f"{node.name} subclasses it in the file"
            if not isinstance(node, ast.Attribute) or node.attr not in (attr, chosen):
                continue
            on_self = isinstance(node.value, ast.Name) and node.value.id == "self"
            if id(node) in own_nodes and on_self:
                if node.attr == chosen:
                    return f"'{chosen}' is already a name in the class"
                stores += isinstance(node.ctx, ast.Store)
            elif node.attr == attr and (id(node) in own_nodes or not on_self):
                return f"other code in the file reads `.{attr}`"
        if stores > 1:
            return "the attribute is assigned more than once"
        return None

    def _auto_named_lists(self) -> None:
        """Unnamed submodules of one class built in a loop: Linen calls them `Dense_0`,
        `Dense_1`, ... in creation order, across the loop and the code around it. They
        become the elements of one nnx.List named after the class in snake_case
        (`self.dense`, Linen's `Dense_<k>` is its element k; naming.auto_list_names),
        indexed in __call__ by a count that follows the same order."""
        by_class: dict[str, list[Sub]] = {}
        for sub in sorted(self.subs, key=lambda s: s.order):
            if sub.auto_class is not None:
                by_class.setdefault(sub.auto_class, []).append(sub)
        for cls, subs in by_class.items():
            if not any(s.loop is not None for s in subs):
                continue
            loops_seen: list[LoopContext] = []
            name = taken = None
            if not any(s.guards for s in subs):
                for candidate in auto_list_names(cls):
                    taken = self._attribute_taken(candidate, subs)
                    if taken is None:
                        name = candidate
                        break
            if name is None:
                why = "next to conditional ones of its class" if taken is None else f"and the nnx.List for Linen's {cls}_<k> would be the attribute '{candidate}', already {taken}"
                for sub in subs:
                    if sub.loop is not None:
                        # Built as a plain attribute, marked TODO; the sizes the loop
                        # carries (`x_size`, what later layers' sizes are written in)
                        # are still replayed in __init__.
                        sub.sizes_loop = sub.loop
                        sub.loop = None
                        sub.problems.append(f"submodule built in a loop without name=f'<list>_{{i}}', {why}: Linen's names depend on the iteration; build an nnx.List in __init__ by hand")
                continue
            index = "0"
            i = 0
            while i < len(subs):
                sub = subs[i]
                if sub.loop is None:
                    sub.list_index = index
                    index = plus(index, "1")
                    i += 1
                    continue
                loop = sub.loop
                group = [s for s in subs[i:] if s.loop is loop]
                if loop.counter is None:
                    loop.counter = loop.index_var or f"_{cls.lower()}_count"
                for j, member in enumerate(group):
                    member.list_index = plus(index, times(loop.counter, len(group)), str(j))
                index = plus(index, times(f"len({loop.iter_src})", len(group)))
                i += len(group)
                loops_seen.append(loop)
            for sub in subs:
                self.subs_by_attr.pop(sub.attr, None)
                sub.attr = name
            self.subs_by_attr[name] = subs[0]

    def _names_after_conditional_ones(self) -> None:
        """Linen numbers the submodules of a class it builds (`Dense_0`, `Dense_1`, ...):
        after one built under a condition, the names of the next ones depend on it, while
        the NNX attributes are fixed."""
        conditional_seen: set[str] = set()
        for sub in sorted(self.subs, key=lambda s: s.order):
            if sub.auto_class is None or sub.loop is not None:
                continue
            if sub.auto_class in conditional_seen:
                sub.problems.append(f"Linen's name for it counts the {sub.auto_class} built under a condition before it: when that one is not built, the Linen name is one lower than the NNX attribute '{sub.attr}' (checkpoint keys); give both a name= to fix it")
            if sub.conditional:
                conditional_seen.add(sub.auto_class)

    def _attribute_taken(self, name: str, group: list[Sub]) -> str | None:
        """What else of the NNX class would be the attribute `name` (the nnx.List of the
        unnamed submodules `group`): None when nothing is."""
        if name in {f.name for f in self.shape.fields}:
            return "a field"
        if name in self.shape_method_names or (self.shape.compact is not None and self.shape.compact.name.value == name):
            return "a method"
        if name in class_level_names(self.shape.class_level):
            return "a class attribute"
        if any(s.attr == name for s in self.subs if s not in group):
            return "a submodule's name"
        if name in self.var_attrs:
            return "a parameter or variable"
        if name in self.sow_names:
            return "the attribute NNX keeps a sown value in"
        if name in self.list_attrs or name in self.dict_attrs or name in self.attr_renames.values() or name in assigned_self_attrs(self.node):
            return "an attribute the class sets"
        return None
