"""Whatever Linen API the rewrite leaves is marked `# TODO(nnx-migrate)` at its own line
(inside converted classes and outside them), code left as Linen is not renamed, and a
second run over converted output reports the same sites again."""

from __future__ import annotations

import ast
import textwrap

import libcst as cst

from nnx_migrate.rewrite import rewrite_source
from nnx_migrate.rewrite.nodes import with_todo_comments
from nnx_migrate.rewrite.renames import LEFT_AS_LINEN, NESTED_CLASS
from nnx_migrate.rewrite.report import TODO_MARK

SOURCE = textwrap.dedent('''\
    import flax.linen as nn


    def factory():
      class Inner(nn.Module):
        @nn.compact
        def __call__(self, x):
          return nn.Dense(3, kernel_init=nn.with_partitioning(nn.initializers.ones, ("a",)))(x)
      return Inner


    def helper(x):
      y = nn.share_scope(x, x)
      return nn.relu(y)


    class A(nn.Module):
      @nn.nowrap
      def double(self, x):
        return 2 * x

      @nn.compact
      def __call__(self, x):
        x = nn.Dense(3)(x)
        nn.share_scope(self, x)
        return self.double(x)
    ''')


def _comment_above(text: str, needle: str) -> str:
    lines = text.splitlines()
    index = next(i for i, line in enumerate(lines) if needle in line and not line.lstrip().startswith("#"))
    return lines[index - 1].strip()


def test_linen_left_is_marked_at_its_line_inside_and_outside_classes():
    result = rewrite_source(SOURCE, "case.py")
    ast.parse(result.new_text)
    assert _comment_above(result.new_text, "y = nn.share_scope(x, x)") == f"# {TODO_MARK}: {LEFT_AS_LINEN}"
    assert _comment_above(result.new_text, "nn.share_scope(self, x)") == f"# {TODO_MARK}: {LEFT_AS_LINEN}"
    assert _comment_above(result.new_text, "class Inner(nn.Module):") == f"# {TODO_MARK}: {NESTED_CLASS}"
    marked = {(t.line, t.why) for t in result.todos}
    assert (13, LEFT_AS_LINEN) in marked and (25, LEFT_AS_LINEN) in marked and (5, NESTED_CLASS) in marked


def test_a_linen_class_left_as_linen_is_not_renamed():
    result = rewrite_source(SOURCE, "case.py")
    inner = result.new_text[result.new_text.index("class Inner"):result.new_text.index("return Inner")]
    assert "nn.with_partitioning(nn.initializers.ones" in inner and "nnx" not in inner
    assert "import flax.linen as nn" in result.new_text  # (still used there)


def test_nowrap_on_a_converted_method_is_dropped():
    result = rewrite_source(SOURCE, "case.py")
    assert "nowrap" not in result.new_text
    assert "  def double(self, x):" in result.new_text


def test_a_second_run_reports_the_same_sites():
    first = rewrite_source(SOURCE, "case.py")
    second = rewrite_source(first.new_text, "case.out.py")
    assert second.new_text == first.new_text
    assert sorted(t.why for t in second.todos) == sorted(t.why for t in first.todos)
    lines = first.new_text.splitlines()
    for site in second.todos:  # each at the statement its comment marks
        assert lines[site.line - 2].strip() == f"# {TODO_MARK}: {site.why}"


def test_a_failed_class_is_marked_and_a_reason_with_newlines_stays_one_comment(monkeypatch):
    from nnx_migrate.rewrite import class_pass

    def fail(self):
        raise RuntimeError("first line\nsecond line")

    monkeypatch.setattr(class_pass.ClassConverter, "build", fail)
    result = rewrite_source(SOURCE, "case.py")
    ast.parse(result.new_text)
    comment = _comment_above(result.new_text, "class A(nn.Module):")
    assert comment.startswith(f"# {TODO_MARK}: conversion failed (RuntimeError: first line second line)")
    assert [c.status for c in result.classes if c.name == "A"] == ["failed"]


def test_todo_comments_are_single_lines():
    statement = cst.parse_statement("x = 1\n")
    marked = with_todo_comments(statement, ["a reason\nquoting\n  code"])
    module = cst.Module(body=[marked])
    assert module.code == f"# {TODO_MARK}: a reason quoting code\nx = 1\n"
    assert with_todo_comments(marked, ["a reason quoting code"]) is marked  # (not twice)


def test_a_setup_name_that_is_no_identifier_becomes_the_attribute_naming_maps_it_to():
    source = textwrap.dedent("""\
        import flax.linen as nn

        class M(nn.Module):
          def setup(self):
            self.query = nn.Dense(4, name='to q')

          def __call__(self, x):
            return self.query(x)
        """)
    result = rewrite_source(source, "case.py")
    assert result.todos == []
    assert "self.to_q = nnx.Linear(" in result.new_text and "return self.to_q(x)" in result.new_text
