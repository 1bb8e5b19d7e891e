"""The engine's bounds on a query's shape and cost, each refused with a 422 that names it.

ClickHouse's defaults, measured on chdb 26.9, are the yardstick: `max_parser_depth` (1000)
takes about 195 levels of parentheses; `max_ast_depth` (1000) takes 497 nested function
calls or a chain of 497 `+`; its query tree may hold 500,000 nodes once aliases are
expanded (aliases doubling 17 times). The engine takes 200 levels of parentheses
(function calls and subqueries count, as each opens one), expressions 500 deep, and
100,000 nodes translated: a node costs Python about 0.5 KB and 20 microseconds, so the
expansion limit is a fifth of ClickHouse's (aliases doubling 15 times), about 50 MB and
a second or two at most; the deadline stops a translation before it anyway.

Parsing and translating recurse in Python (sqlglot's parser: about 24 frames a level of
parentheses), so 200 levels need some 5,000 frames: `compiling` raises the limit to
10,000 while a query is compiled, and puts it back after. Python's C recursion (json,
repr) takes about 200 bytes a level, so 10,000 levels stay within 2 MB of the 8 MB a
thread has (tests/test_query_limits.py compiles the deepest query allowed on a 4 MB
thread).
"""

from __future__ import annotations

import gc
import sys
import threading
import time
from collections.abc import Iterator
from contextlib import contextmanager

from sqlglot import exp
from sqlglot.tokens import TokenType

from .errors import InvalidQuery, QueryTimeout

MAX_PARENTHESES = 200
MAX_DEPTH = 500
MAX_EXPANDED = 100_000
RECURSION_LIMIT = 10_000
# SQLite's LIKE backtracks: one call costs up to its pattern's length times its string's.
# 1,000 bytes (SQLite's default is 50,000) keeps one call on a 64 KiB value under 0.5 s.
MAX_LIKE_PATTERN = 1_000

_OPEN = {TokenType.L_PAREN, TokenType.L_BRACKET, TokenType.L_BRACE}
_CLOSE = {TokenType.R_PAREN, TokenType.R_BRACKET, TokenType.R_BRACE}


def check_parentheses(tokens: list) -> None:
    """Before sqlglot parses (which recurses once a level): parentheses nested at most
    MAX_PARENTHESES deep. Linear in the tokens."""
    depth = 0
    for token in tokens:
        if token.token_type in _OPEN:
            depth += 1
            if depth > MAX_PARENTHESES:
                raise InvalidQuery(f"parentheses nested deeper than {MAX_PARENTHESES} "
                                   f"(line {token.line}, column {token.col})")
        elif token.token_type in _CLOSE:
            depth -= 1


def check_depth(tree: exp.Expression) -> None:
    """After parsing, before anything recurses over the tree: no expression deeper than
    MAX_DEPTH (a chain of 1,000 `+` is flat in parentheses but 1,000 deep). A chain of
    ANDs or ORs is one level, as in ClickHouse, where and() and or() take any number of
    arguments (the translation gathers them without recursion). Iterative."""
    stack: list[tuple[exp.Expression, int]] = [(tree, 1)]
    while stack:
        node, depth = stack.pop()
        if depth > MAX_DEPTH:
            raise InvalidQuery(f"expression nested deeper than {MAX_DEPTH}")
        chain = type(node) if isinstance(node, (exp.And, exp.Or)) else None
        stack.extend((child, depth if type(child) is chain else depth + 1)
                     for child in node.iter_expressions())


_compiling_lock = threading.Lock()
_compiling = 0
_recursion_before = 0
_collecting_before = True


@contextmanager
def compiling() -> Iterator[None]:
    """While any thread compiles a query: Python's recursion limit at RECURSION_LIMIT, and
    the cyclic garbage collector paused (sqlglot's nodes point to their parents, so each
    collection walks every node of a large tree: it doubled the time to translate a
    query of many zoned functions). Both as they were once no query is compiled."""
    global _compiling, _recursion_before, _collecting_before
    with _compiling_lock:
        if _compiling == 0:
            _recursion_before = sys.getrecursionlimit()
            if _recursion_before < RECURSION_LIMIT:
                sys.setrecursionlimit(RECURSION_LIMIT)
            _collecting_before = gc.isenabled()
            gc.disable()
        _compiling += 1
    try:
        yield
    finally:
        with _compiling_lock:
            _compiling -= 1
            if _compiling == 0:
                if sys.getrecursionlimit() == RECURSION_LIMIT:
                    sys.setrecursionlimit(_recursion_before)
                if _collecting_before:
                    gc.enable()


class Budget:
    """What translating one query may spend: MAX_EXPANDED nodes, and time up to its
    deadline (time.monotonic() seconds; None: none)."""

    CLOCK_EVERY = 1000  # nodes between two looks at the clock

    def __init__(self, deadline: float | None = None):
        self.deadline = deadline
        self.nodes = 0

    def spend(self, nodes: int = 1) -> None:
        before = self.nodes
        self.nodes += nodes
        if self.nodes > MAX_EXPANDED:
            raise InvalidQuery(f"the query expands to more than {MAX_EXPANDED:,} "
                               "expression nodes (aliases used within aliases)")
        if (self.deadline is not None and before // self.CLOCK_EVERY
                != self.nodes // self.CLOCK_EVERY and time.monotonic() > self.deadline):
            raise QueryTimeout("The query was stopped after the local time limit while "
                               "it was compiled")

    def check_clock(self) -> None:
        if self.deadline is not None and time.monotonic() > self.deadline:
            raise QueryTimeout("The query was stopped after the local time limit while "
                               "it was compiled")
