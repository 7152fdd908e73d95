"""Small LibCST edits shared by the rules' fixes, written to keep the user's layout."""

from __future__ import annotations

import libcst as cst


def append_keyword_arg(call: cst.Call, keyword: str, value: cst.BaseExpression) -> cst.Call:
    """`f(a, b)` -> `f(a, b, keyword=value)`, following the call's own layout.

    A one-argument-per-line call gets the new argument on its own line with the same
    indentation; a trailing comma stays trailing.
    """
    new_arg = cst.Arg(
        value=value,
        keyword=cst.Name(keyword),
        equal=cst.AssignEqual(
            whitespace_before=cst.SimpleWhitespace(""),
            whitespace_after=cst.SimpleWhitespace(""),
        ),
    )
    args = list(call.args)
    if not args:
        return call.with_changes(args=[new_arg])
    last = args[-1]
    if len(args) >= 2 and isinstance(args[-2].comma, cst.Comma):
        separator = args[-2].comma
    elif isinstance(call.whitespace_before_args, cst.ParenthesizedWhitespace):
        separator = cst.Comma(whitespace_after=call.whitespace_before_args)
    else:
        separator = cst.Comma(whitespace_after=cst.SimpleWhitespace(" "))
    trailing = last.comma
    if isinstance(trailing, cst.Comma) and isinstance(trailing.whitespace_after, cst.ParenthesizedWhitespace) \
            and isinstance(separator.whitespace_after, cst.ParenthesizedWhitespace):
        # One argument per line: a comment after the old last argument stays with it, the
        # new argument gets the separator's indentation, the closing paren keeps its own.
        old_ws, sep_ws = trailing.whitespace_after, separator.whitespace_after
        separator = trailing.with_changes(whitespace_after=old_ws.with_changes(last_line=sep_ws.last_line))
        trailing = trailing.with_changes(whitespace_after=sep_ws.with_changes(last_line=old_ws.last_line))
    args[-1] = last.with_changes(comma=separator, whitespace_after_arg=cst.SimpleWhitespace(""))
    new_arg = new_arg.with_changes(comma=trailing, whitespace_after_arg=last.whitespace_after_arg)
    return call.with_changes(args=[*args, new_arg])


def insert_positional_arg(call: cst.Call, index: int, value: cst.BaseExpression) -> cst.Call:
    """`f(b)` -> `f(value, b)` (only used at the start of short argument lists)."""
    args = list(call.args)
    new_arg = cst.Arg(value=value, comma=cst.Comma(whitespace_after=cst.SimpleWhitespace(" ")))
    if index >= len(args):
        if args:
            args[-1] = args[-1].with_changes(comma=cst.Comma(whitespace_after=cst.SimpleWhitespace(" ")))
        new_arg = new_arg.with_changes(comma=cst.MaybeSentinel.DEFAULT)
    args.insert(index, new_arg)
    return call.with_changes(args=args)


def wrap_in_call(func: cst.BaseExpression, argument: cst.BaseExpression) -> cst.Call:
    """`argument` -> `func(argument)`, moving the argument's parentheses outside."""
    inner = argument.with_changes(lpar=[], rpar=[]) if hasattr(argument, "lpar") else argument
    call = cst.Call(func=func, args=[cst.Arg(value=inner)])
    if getattr(argument, "lpar", None):
        call = call.with_changes(lpar=argument.lpar, rpar=argument.rpar)
    return call
