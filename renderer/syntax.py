"""Can this text still begin a program OpenSCAD parses? A prefix check, one character at a time.

Pure text, no OpenSCAD run. :class:`ScadPrefix` follows a program as it is written and says as
soon as a character makes it a certain syntax error, whatever would follow. Decoding uses it to
refuse such a token (:mod:`policies.constrained`); the rules are the few that the policy's own
syntax errors break (``rl.eval``'s and PPO's records: ``translate([18, 25();``, ``base_w = 11);``,
``thickness = 0.6.4;``, ``web_t = ;``), with OpenSCAD's comments and strings skipped as its
lexer skips them (see :mod:`renderer.literals`):

- a closing bracket must close the innermost open one (``)`` never closes ``[``);
- ``;`` ends a statement, and ``{`` opens a block, only outside brackets or directly inside ``{ }``;
- ``;``, ``,``, ``)`` and ``]`` never follow ``=`` (an assignment or argument with no value);
- a statement begins with a name (which may begin with digits: ``5size``), a modifier
  (``!#%*``) or a brace, never a number (``16.4;``);
- ``,`` only separates inside ``( )`` or ``[ ]`` (``length = 65, 65;`` is no statement);
- a name or number never follows another with only spaces or comments between (``panel.y
  translate(``, ``s difference()``), unless the first is ``module``, ``function``, ``else``,
  ``each``, ``include`` or ``use``;
- a number already holding a ``.`` takes no second one;
- the program may end only outside comments and strings, with every bracket closed, after a
  ``;`` or a ``}``.

Anything these rules allow may still fail to parse: this is a guard, not a parser. Checked on
every program in seven main jobs' PPO and evaluation records (``bench/syntax_guard.py
--records``): none of the 13,841 that OpenSCAD rendered is refused, 306 of the 329 syntax
errors are. A state is a small tuple, so states can key a cache::

    state = ScadPrefix.advance(ScadPrefix.START, "cube([10, 20")  # a state: the program goes on
    ScadPrefix.advance(state, ");")                                # None: ')' cannot close '['
    ScadPrefix.may_end(ScadPrefix.advance(state, "]);\\n"))        # True
"""

from __future__ import annotations

CODE, LINE_COMMENT, BLOCK_COMMENT, STRING, STRING_ESCAPE = range(5)
OPENERS = {"(": ")", "[": "]", "{": "}"}
CLOSERS = {")": "(", "]": "[", "}": "{"}
NO_VALUE_AFTER_EQUALS = frozenset(";,)]")
STATEMENT_ENDS = frozenset(("", ";", "{", "}"))
STATEMENT_STARTS = frozenset("_$!#%*{};")
"""Besides letters, what a statement may begin with (``/`` and spaces are read before)."""
NUMBER_NONE, NUMBER_INT, NUMBER_FRACTION, HEAD_DIGITS = range(4)
OTHER_WORD = "*"
"""A name being read that is no keyword of :data:`WORD_KEYWORDS` (one that is stays spelt)."""
WORD_KEYWORDS = ("module", "function", "else", "each", "include", "use")
"""The words a name may follow: ``module m``, ``else cube``; any other operand may not."""
OPERAND_END = "a"
"""``last`` once a name or number other than those keywords ended in a space or a comment."""
STACK_KEPT = 6
"""Open brackets a state remembers; deeper ones are only counted (a token rarely closes six)."""


class ScadPrefix:
    """The rules of the module docstring as a state machine over ``(mode, stack, hidden, last,
    number, pending)``: lexer mode, the innermost open brackets, how many older ones are only
    counted, the last significant character (or :data:`OPERAND_END`), the number or name being
    read, and a ``/`` that may start a comment (or ``*`` that may end one)."""

    START = (CODE, "", 0, "", NUMBER_NONE, "")

    @staticmethod
    def advance(state: tuple, text: str) -> tuple | None:
        """The state after ``text``, or None if no program begins with what was written."""
        for char in text:
            state = _step(state, char)
            if state is None:
                return None
        return state

    @staticmethod
    def plain_allowed(state: tuple) -> bool:
        """Whether every piece of a name or number (then spaces) may follow: not right after an
        operand that ended (``policies.constrained`` checks every token there)."""
        return state[3] != OPERAND_END

    @staticmethod
    def may_end(state: tuple) -> bool:
        """Whether the program written so far may end here."""
        mode, stack, hidden, last, _, pending = state
        if mode not in (CODE, LINE_COMMENT) or stack or hidden:
            return False
        return last in (";", "}") and pending == ""


def _step(state: tuple, char: str) -> tuple | None:
    mode, stack, hidden, last, number, pending = state
    if mode == LINE_COMMENT:
        return (CODE, stack, hidden, last, NUMBER_NONE, "") if char == "\n" else state
    if mode == BLOCK_COMMENT:
        if pending == "*" and char == "/":
            return (CODE, stack, hidden, last, NUMBER_NONE, "")
        return (mode, stack, hidden, last, number, "*" if char == "*" else "")
    if mode == STRING:
        if char == "\\":
            return (STRING_ESCAPE, stack, hidden, last, number, pending)
        return (CODE, stack, hidden, '"', NUMBER_NONE, "") if char == '"' else state
    if mode == STRING_ESCAPE:
        return (STRING, stack, hidden, last, number, pending)
    if pending == "/":
        if char == "/":
            return (LINE_COMMENT, stack, hidden, last, NUMBER_NONE, "")
        if char == "*":
            return (BLOCK_COMMENT, stack, hidden, last, NUMBER_NONE, "")
        state = (CODE, stack, hidden, "/", NUMBER_NONE, "")  # a division after all
        mode, stack, hidden, last, number, pending = state
    return _code_step(stack, hidden, last, number, char)


def _code_step(stack: str, hidden: int, last: str, number, char: str) -> tuple | None:
    if char == "/":
        return (CODE, stack, hidden, _ended(last, number), NUMBER_NONE, "/")
    if char == '"':
        return (STRING, stack, hidden, last, NUMBER_NONE, "")
    if char.isspace():
        return (CODE, stack, hidden, _ended(last, number), NUMBER_NONE, "")
    if last == "=" and char in NO_VALUE_AFTER_EQUALS:
        return None
    at_statement_level = not stack or stack[-1] == "{"
    if number == HEAD_DIGITS:  # ``5size`` is a name, ``16.4;`` no statement
        if char.isdigit():
            return (CODE, stack, hidden, char, HEAD_DIGITS, "")
        if not (char.isalpha() or char == "_"):
            return None
    elif at_statement_level and last in STATEMENT_ENDS and not (char.isalpha() or char in STATEMENT_STARTS):
        if not char.isdigit():
            return None
        return (CODE, stack, hidden, char, HEAD_DIGITS, "")
    if char == "," and at_statement_level and (stack or not hidden):
        return None
    if char == "{" and not at_statement_level:
        return None  # no brace inside an expression: ``translate([18, 25() {``
    if char in OPENERS:
        stack += char
        if len(stack) > STACK_KEPT:
            stack, hidden = stack[1:], hidden + 1
        return (CODE, stack, hidden, char, NUMBER_NONE, "")
    if char in CLOSERS:
        if stack:
            if stack[-1] != CLOSERS[char]:
                return None
            return (CODE, stack[:-1], hidden, char, NUMBER_NONE, "")
        if not hidden:
            return None
        return (CODE, stack, hidden - 1, char, NUMBER_NONE, "")  # an older bracket: not checked
    if char == ";" and stack and stack[-1] != "{":
        return None
    if last == OPERAND_END and number == NUMBER_NONE and (char.isalnum() or char in "_$"):
        return None  # ``panel.y translate(``, ``s difference()``: two operands with nothing between
    number = _number_after(number, char)
    return None if number is None else (CODE, stack, hidden, char, number, "")


def _ended(last: str, number) -> str:
    """``last`` once the name or number being read (``number``) ends: :data:`OPERAND_END` unless it
    is a keyword a name may follow."""
    if number == NUMBER_NONE or number in WORD_KEYWORDS:
        return last
    return OPERAND_END


def _number_after(number, char: str):
    """What is being read after ``char``: a number state, a word (:data:`OTHER_WORD` or the start of
    a keyword), or None for a second ``.`` in a number."""
    if char == ".":
        if number == NUMBER_FRACTION:
            return None
        return NUMBER_FRACTION if number in (NUMBER_INT, NUMBER_NONE) else NUMBER_NONE
    if char.isdigit():
        return NUMBER_INT if number == NUMBER_NONE else number if isinstance(number, int) else OTHER_WORD
    if char.isalpha() or char in "_$":
        word = (number if isinstance(number, str) else OTHER_WORD if number != NUMBER_NONE else "") + char
        return word if any(keyword.startswith(word) for keyword in WORD_KEYWORDS) else OTHER_WORD
    return NUMBER_NONE
