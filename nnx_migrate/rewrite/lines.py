"""Line numbers for the few nodes a report names, in one code-generation pass.

LibCST's PositionProvider records a position for every node of the file, which costs
about twice a parse; a report needs a handful. `LineResolver.ref(node)` hands out a
placeholder, and `resolve()` counts the line breaks of the statements that hold them, in
source order (no code generation where the statement starts are known from `ast`), and
fills in the start line of just those nodes.
"""

from __future__ import annotations

import re

import libcst as cst
from libcst._nodes.internal import CodegenState

from nnx_migrate.rewrite.visitors import children_in_order


class _NoPosition:
    """What `record_syntactic_position` returns where positions are not wanted."""

    __slots__ = ()

    def __enter__(self) -> None:
        return None

    def __exit__(self, *exc) -> bool:
        return False


_NO_POSITION = _NoPosition()


class _Codegen(CodegenState):
    """LibCST's code generation state, without the generator-based context manager its
    nodes enter (and we never read) around every positioned node: about a third of the
    cost of rendering a module."""

    def record_syntactic_position(self, node, *, start_node=None, end_node=None):
        return _NO_POSITION


def render(node: cst.CSTNode, module: cst.Module | None = None, texts: StatementTexts | None = None) -> str:
    """`module.code_for_node(node)` (`module.code` for the module itself): the same text.
    `texts`: the run's code of top-level statements, for a whole module."""
    if texts is not None and type(node) is cst.Module and module is None and node.has_trailing_newline:
        return _render_module(node, texts)
    module = module if module is not None else node if type(node) is cst.Module else _EMPTY
    state = _Codegen(default_indent=module.default_indent, default_newline=module.default_newline)
    node._codegen(state)
    return "".join(state.tokens)


class StatementTexts:
    """The text of top-level statements, by the statement (nodes are immutable: a
    statement's code at the top level is a function of the node and the module's indent
    and newline). A file's module is rendered once by the class pass, then again by the
    training pass with most statements untouched; most statements the class pass keeps
    come unchanged from the input, whose text (`remember_source`) is their code. One table
    serves one run (run_context.RunContext); each entry holds its node, so its id is not
    reused meanwhile."""

    LIMIT = 50_000

    def __init__(self) -> None:
        self._texts: dict[int, tuple[cst.CSTNode, str, str, str]] = {}

    def remember(self, statement: cst.CSTNode, module: cst.Module, text: str) -> None:
        if len(self._texts) >= self.LIMIT:
            self._texts.clear()
        self._texts[id(statement)] = (statement, module.default_indent, module.default_newline, text)

    def get(self, statement: cst.CSTNode, indent: str, newline: str) -> str | None:
        known = self._texts.get(id(statement))
        if known is not None and known[0] is statement and known[1] == indent and known[2] == newline:
            return known[3]
        return None

    def remember_source(self, module: cst.Module, text: str, starts: list[int]) -> None:
        """Takes each top-level statement's code from the text it was parsed from: the
        lines from its start (`statement_starts`) to the next one's, the last one's up to
        the module's footer lines. Only for a text split into lines as `ast` splits it,
        with "\n" line breaks and a final one (`render` then takes them as they are)."""
        if not module.has_trailing_newline or not module.body or len(starts) != len(module.body):
            return
        lines = text.splitlines(keepends=True)
        ends = [*starts[1:], len(lines) + 1 - len(module.footer)]
        for statement, start, end in zip(module.body, starts, ends, strict=False):
            self.remember(statement, module, "".join(lines[start - 1 : end - 1]))


def _render_module(module: cst.Module, texts: StatementTexts) -> str:
    """`render(module)`, taking the code of a top-level statement rendered (or read from
    its source) before, and keeping the code of the others."""
    state = _Codegen(default_indent=module.default_indent, default_newline=module.default_newline)
    tokens = state.tokens
    for line in module.header:
        line._codegen(state)
    indent, newline = module.default_indent, module.default_newline
    for statement in module.body:
        known = texts.get(statement, indent, newline)
        if known is not None:
            tokens.append(known)
            continue
        mark = len(tokens)
        statement._codegen(state)
        texts.remember(statement, module, "".join(tokens[mark:]))
    for line in module.footer:
        line._codegen(state)
    if not tokens:  # (Module._codegen_impl with a trailing newline)
        state.add_token(state.default_newline)
    return "".join(tokens)


_EMPTY = cst.Module(body=[])


def _anchor(node: cst.CSTNode) -> cst.CSTNode:
    # Statements start with their leading blank lines and decorators; the line a reader
    # looks for is the one with the name or the code.
    if isinstance(node, (cst.ClassDef, cst.FunctionDef)):
        return node.name
    if isinstance(node, cst.SimpleStatementLine) and node.body:
        return node.body[0]
    return node


class _AllFound(Exception):
    """Stops a rendering once every node it was asked for has its line."""


class _Counting(_Codegen):
    def __init__(self, module: cst.Module, targets: dict[int, cst.CSTNode]):
        super().__init__(default_indent=module.default_indent, default_newline=module.default_newline)
        self.line = 1
        self.targets = targets
        self.start: dict[int, int] = {}
        self.wanted: set[int] | None = None  # set: stop once these are found

    def add_token(self, value: str) -> None:
        self.tokens.append(value)
        self.line += value.count("\n")

    def before_codegen(self, node: cst.CSTNode) -> None:
        key = id(node)
        if key in self.targets and key not in self.start:
            self.start[key] = self.line
            if self.wanted is not None:
                self.wanted.discard(key)
                if not self.wanted:
                    raise _AllFound


class LineResolver:
    def __init__(self, module: cst.Module):
        self.module = module
        self._targets: dict[int, cst.CSTNode] = {}
        self._start: dict[int, int] | None = None
        # Where `starts` is set (the line each top-level statement's code starts on, see
        # `statement_starts`), only the statements that hold reported nodes are rendered:
        # first those named by `owner` (a hint: the statement being converted when a node
        # was referred to), then any other that holds one of the nodes not found yet.
        self.starts: list[int] | None = None
        self.owner: int | None = None
        self._owned: dict[int, set[int]] = {}  # statement index -> the nodes hinted there

    def ref(self, node: cst.CSTNode) -> int:
        """A placeholder (negative) for the node's start line, resolved by `line()`."""
        anchor = _anchor(node)
        self._targets[id(anchor)] = anchor
        self._targets[id(node)] = node
        if self.owner is not None:
            self._owned.setdefault(self.owner, set()).update((id(anchor), id(node)))
        self._start = None
        return -id(anchor)

    def _resolve(self) -> None:
        if self._start is None:
            state = _Counting(self.module, self._targets)
            if self.starts is None:
                self.module._codegen(state)
            else:
                self._render_holders(state)
            self._start = state.start

    def _render_holders(self, state: _Counting) -> None:
        body = self.module.body
        rendered = set()
        for index, owned in sorted(self._owned.items()):
            # up to the last node hinted there (a converted class without TODO sites: its
            # header); all of it if one of them is not there
            state.wanted = {key for key in owned if key not in state.start}
            if not state.wanted:
                continue
            state.line = self.starts[index]
            try:
                _count_lines(body[index], state)
                rendered.add(index)
            except _AllFound:
                pass  # (not all of it rendered: the search below may come back to it)
        state.wanted = None
        missing = {key for key in self._targets if key not in state.start}
        for index, stmt in enumerate(body):
            if not missing:
                break
            if index not in rendered and _holds_any(stmt, missing):
                state.line = self.starts[index]
                _count_lines(stmt, state)
                missing.difference_update(state.start)
        # what is still missing is generated code, not in the file: line 0, as before

    def line(self, placeholder: int) -> int:
        if placeholder >= 0:
            return placeholder
        self._resolve()
        return self._start.get(-placeholder, 0)


# The nodes whose own code (not their children's) can hold line breaks, in a parsed tree:
# newlines, whitespace with a backslash continuation, string literals. Every other token
# a node writes itself is a keyword, a name, a number or punctuation.
_TEXT_WITH_BREAKS = {cst.SimpleWhitespace, cst.SimpleString, cst.FormattedStringText, cst.Comment}
if hasattr(cst, "TemplatedStringText"):
    _TEXT_WITH_BREAKS.add(cst.TemplatedStringText)


# Node types whose code LibCST writes in another order than its traversal visits their
# children (`del` visits the target before the space after `del`; `/,` the comma before
# the space), and rare syntax families not checked against the code generation (match
# statements, type parameters, `except*`, t-strings): their lines come from the code
# generation itself. Every other node type of 1,900 files (the corpus, jax, numpy, flax,
# libcst, optax) gives each node the line the code generation gives it.
_WRITTEN_OUT_OF_ORDER = {cst.Del, cst.ParamSlash}
_RARE_FAMILIES = ("Match", "Type", "ParamSpec", "TryStar", "ExceptStar", "Lazy", "Templated")


def _count_lines(root: cst.CSTNode, state: _Counting) -> None:
    """`root._codegen(state)` for what `_Counting` records (the line each target starts
    on, `_AllFound` once the wanted ones are found), counting the line breaks of the
    nodes in source order instead of generating the code. For statements of a parsed
    tree only (an empty block, which codegen fills with `pass` and a newline, cannot be
    parsed)."""
    line = state.line
    targets, start, wanted = state.targets, state.start, state.wanted
    stack: list = [root]
    while stack:
        node = stack.pop()
        if type(node) is int:  # the line breaks of a string between its parentheses
            line += node
            continue
        key = id(node)
        if key in targets and key not in start:
            start[key] = line
            if wanted is not None:
                wanted.discard(key)
                if not wanted:
                    state.line = line
                    raise _AllFound
        kind = type(node)
        if kind is cst.Newline:
            line += 1 if node.value is None else node.value.count("\n")
        elif kind in _TEXT_WITH_BREAKS:
            breaks = node.value.count("\n")
            lpar = getattr(node, "lpar", ())
            if lpar:  # (a parenthesized string: its parentheses' whitespace first)
                stack.extend(reversed(node.rpar))
                stack.append(breaks)
                stack.extend(reversed(lpar))
            else:
                line += breaks
                stack.extend(reversed(children_in_order(node)))
        elif kind in _WRITTEN_OUT_OF_ORDER or kind.__name__.startswith(_RARE_FAMILIES):
            state.line = line
            node._codegen(state)  # (the code generation, as before: exact for any node)
            line = state.line
        else:
            stack.extend(reversed(children_in_order(node)))
    state.line = line


def _holds_any(node: cst.CSTNode, keys: set[int]) -> bool:
    stack = [node]
    while stack:
        node = stack.pop()
        if id(node) in keys:
            return True
        stack.extend(children_in_order(node))
    return False


def _newlines(value: str) -> int:
    # what LibCST's position providers count as line breaks: \r\n, \r, \n
    return value.count("\n") + value.count("\r") - value.count("\r\n")


class _StartLines(CodegenState):
    """The start line LibCST's `PositionProvider` gives every node, without its columns,
    ranges and metadata machinery (same codegen hooks, same precedence)."""

    def __init__(self, module: cst.Module):
        super().__init__(default_indent=module.default_indent, default_newline=module.default_newline)
        self.line = 1
        self.start: dict[int, int] = {}
        self._stack: list[int] = []

    def add_indent_tokens(self) -> None:
        self.tokens.extend(self.indent_tokens)
        for token in self.indent_tokens:
            self.line += _newlines(token)

    def add_token(self, value: str) -> None:
        self.tokens.append(value)
        self.line += _newlines(value)

    def before_codegen(self, node: cst.CSTNode) -> None:
        self._stack.append(self.line)

    def after_codegen(self, node: cst.CSTNode) -> None:
        start = self._stack.pop()
        self.start.setdefault(id(node), start)  # a syntactic position, once recorded, wins

    def record_syntactic_position(self, node, *, start_node=None, end_node=None):
        return _RecordStart(self, node, start_node)


class _RecordStart:
    """`_StartLines.record_syntactic_position` as a plain object, not a generator."""

    __slots__ = ("state", "node", "start_node", "line")

    def __init__(self, state: _StartLines, node, start_node):
        self.state, self.node, self.start_node = state, node, start_node

    def __enter__(self) -> None:
        self.line = self.state.line

    def __exit__(self, *exc) -> bool:
        start = self.state.start
        start[id(self.node)] = start[id(self.start_node)] if self.start_node is not None else self.line
        return False


def start_lines(module: cst.Module, only: dict[int, int] | None = None) -> dict[int, int]:
    """id(node) -> `PositionProvider`'s start line, for every node of `module` (keep the
    module alive while using the ids). `only` ({index of a top-level statement: the line
    its code starts on}, see `statement_starts`) renders just those statements."""
    state = _StartLines(module)
    if only is None:
        module._codegen(state)
    else:
        for index, line in sorted(only.items()):
            state.line = line
            module.body[index]._codegen(state)
    return state.start


def statement_spans(nodes: list, statements) -> list[list] | None:
    """Python's `ast` statements (`nodes`) of each LibCST statement (a line of `a; b` is
    several); None if the two parsers do not line up."""
    spans = []
    i = 0
    for stmt in statements:
        count = len(stmt.body) if isinstance(stmt, cst.SimpleStatementLine) else 1
        group = nodes[i : i + count]
        if len(group) != count:
            return None
        i += count
        spans.append(group)
    return spans if i == len(nodes) else None


def statement_starts(statements, spans) -> list[int]:
    """The line each top-level statement's code starts on, its leading blank and comment
    lines included (as LibCST renders it), from Python's `ast` statements of each
    (`spans`, one group per LibCST statement): every leading line is one line."""
    starts = []
    for stmt, group in zip(statements, spans, strict=False):
        first = min([group[0].lineno, *(d.lineno for d in getattr(group[0], "decorator_list", ()))])
        lead = len(stmt.leading_lines)
        decorators = getattr(stmt, "decorators", ())
        if decorators:  # (LibCST puts the lines above the first one on the statement)
            lead += len(decorators[0].leading_lines)
        starts.append(first - lead)
    return starts


# Characters `str.splitlines` treats as line breaks but Python's parser (and `ast` line
# numbers) does not: text with one of them cannot be cut into lines by `splitlines`.
_OTHER_LINE_BREAKS = re.compile("[\v\f\x1c\x1d\x1e\x85\u2028\u2029]")


def splits_lines_like_ast(text: str) -> bool:
    """Whether `text.splitlines()` numbers lines as `ast` does."""
    return _OTHER_LINE_BREAKS.search(text) is None
