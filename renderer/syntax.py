"""Can this text still begin a program OpenSCAD parses? A prefix check, one character at a time.

Pure text, no OpenSCAD run. :class:`ScadPrefix` follows a program as it is written and says as
soon as a character makes it a certain syntax error, whatever would follow. Decoding uses it to
refuse such a token (:mod:`policies.constrained`); the rules are the few that the policy's own
syntax errors break (``rl.eval``'s and PPO's records: ``translate([18, 25();``, ``base_w = 11);``,
``thickness = 0.6.4;``, ``web_t = ;``, ``outer_d = hose_id = 3;``), with OpenSCAD's comments
and strings skipped as its lexer skips them (see :mod:`renderer.literals`):

- a closing bracket must close the innermost open one (``)`` never closes ``[``);
- ``;`` ends a statement, and ``{`` opens a block, only outside brackets or directly inside
  ``{ }``: never inside an assignment's value (``x = difference() {``);
- an assignment made as a statement holds one ``=`` (``a = b = 3;``; ``==``, ``<=``, ``!=`` are
  comparisons), and its value is open until its ``;``; a list holds none (``[0, -2, $fn = 32]``);
- after ``=`` comes a value: not ``;``, ``,``, ``)``, ``]`` or a binary operator (``x = < 17``);
- a statement begins with a name, a modifier (``!#%*``) or a brace; its first name is followed by
  ``(`` or ``=`` (``handle11;``, ``x/2;`` and ``x.y = 2`` are no statements) unless it is
  ``module``, ``function``, ``else``, ``include`` or ``use``; a name may begin with digits
  (``5size``), but a statement never begins with a number (``16.4;``, ``225855 = 4;``);
- ``,`` only separates inside ``( )`` or ``[ ]`` (``length = 65, 65;`` is no statement);
- a name or number never follows another with only spaces or comments between (``panel.y
  translate(``, ``s difference()``), unless the first is one of those keywords or ``each``;
- a number already holding a ``.`` takes no second one;
- the program may end only outside comments and strings, with every bracket and value closed,
  after a ``;`` or a ``}``.

Anything these rules allow may still fail to parse: this is a guard, not a parser. Checked on
every program in eight main jobs' PPO and evaluation records (``bench/syntax_guard.py
--records``): none of the 16,250 that OpenSCAD rendered is refused, 381 of the 397 syntax
errors are. A state is a small tuple, so states can key a cache::

    state = ScadPrefix.advance(ScadPrefix.START, "cube([10, 20")  # a state: the program goes on
    ScadPrefix.advance(state, ");")                                # None: ')' cannot close '['
    ScadPrefix.may_end(ScadPrefix.advance(state, "]);\\n"))        # True
"""

from __future__ import annotations

CODE, LINE_COMMENT, BLOCK_COMMENT, STRING, STRING_ESCAPE = range(5)
OPENERS = {"(": ")", "[": "]", "{": "}"}
CLOSERS = {")": "(", "]": "[", "}": "{"}
VALUE = "="
"""On the bracket stack: the value of an assignment made at statement level, open until its ``;``."""
NO_VALUE_AFTER_EQUALS = frozenset(";,)]<>*%&|?:")
"""What never follows ``=``: an end, or a binary operator with nothing on its left."""
STATEMENT_ENDS = frozenset(("", ";", "{", "}"))
COMPARING = frozenset("<>!=")
"""Before ``=``: it is part of ``<=``, ``>=``, ``!=`` or ``==``, no assignment."""
STATEMENT_STARTS = frozenset("_$!#%*{};")
"""Besides letters and digits, what a statement may begin with (``/`` and spaces are read before)."""
NUMBER_NONE, NUMBER_INT, NUMBER_FRACTION, HEAD_DIGITS = range(4)
OTHER_WORD = "*"
"""A name being read that is no keyword of :data:`WORD_KEYWORDS` (one that is stays spelt)."""
HEAD = "^"
"""Before a name being read: it began a statement (``^*``, or ``^mod`` on the way to ``module``)."""
WORD_KEYWORDS = ("module", "function", "else", "each", "include", "use")
"""The words a name may follow: ``module m``, ``else cube``; any other operand may not."""
OPERAND_END = "<operand>"
"""``last`` once a name or number other than those keywords ended in a space or a comment (the
marks are no single character, so no character is taken for one)."""
KEYWORD_END = "<keyword>"
"""``last`` once one of those keywords ended in a space or a comment."""
HEAD_END = "<name>"
"""``last`` once the name that began a statement ended in a space or a comment: ``(`` or ``=`` next."""
STACK_KEPT = 12
"""Open brackets a state remembers; deeper ones are only counted, not checked."""


class ScadPrefix:
    """The rules of the module docstring as a state machine over ``(mode, stack, hidden, last,
    number, pending)``: lexer mode, the innermost open brackets (and assignment values,
    :data:`VALUE`), how many older ones are only counted, the last significant character (or one
    of the ``*_END`` marks), the number or name being read, and a character whose meaning the
    next one decides (``/`` a comment or a division, ``*`` the end of a comment, ``=`` a second
    assignment or ``==``)."""

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
    def accepts(code: str) -> bool:
        """Whether the whole of ``code`` passes: no character refused, and it may end where it ends."""
        state = ScadPrefix.advance(ScadPrefix.START, code)
        return state is not None and ScadPrefix.may_end(state)

    @staticmethod
    def plain_allowed(state: tuple) -> bool:
        """Whether every piece of a name or number (then spaces) may follow: not right after an
        operand or a statement's first name ended, where a statement begins or has begun with
        digits (``16\\n`` is refused there), or where the next character decides what the last one
        was (``policies.constrained`` checks every token there)."""
        _, stack, _, last, number, pending = state
        statement_start = _at_statement_level(stack) and last in STATEMENT_ENDS
        return not (last in (OPERAND_END, HEAD_END) or number == HEAD_DIGITS or pending or statement_start)

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
    if pending == "=":  # after a second ``=`` in one assignment, or one in a list: only ``==`` makes sense
        return (CODE, stack, hidden, "=", NUMBER_NONE, "") if char == "=" else None
    if pending == "/":
        if char == "/":
            return (LINE_COMMENT, stack, hidden, last, NUMBER_NONE, "")
        if char == "*":
            return (BLOCK_COMMENT, stack, hidden, last, NUMBER_NONE, "")
        if last == HEAD_END:
            return None  # ``name / 2`` as a statement
        last, number = "/", NUMBER_NONE  # a division after all
    return _code_step(stack, hidden, last, number, char)


def _code_step(stack: str, hidden: int, last: str, number, char: str) -> tuple | None:
    if char.isspace() or char == "/":
        if number == HEAD_DIGITS:  # ``16 ``, ``225855 /``: a statement that began with a number, which no
            return None            # text can mend (refused here, not left where only spaces could follow)
        return (CODE, stack, hidden, _ended(last, number), NUMBER_NONE, "/" if char == "/" else "")
    if last == "=" and char in NO_VALUE_AFTER_EQUALS:
        return None
    if char == '"':
        return None if last in (HEAD_END, OPERAND_END) else (STRING, stack, hidden, last, NUMBER_NONE, "")
    if not _statement_allows(stack, last, number, char):
        return None
    at_statement_level = _at_statement_level(stack)
    if at_statement_level and last in STATEMENT_ENDS and char.isdigit():
        return (CODE, stack, hidden, char, HEAD_DIGITS, "")
    if char == "=":
        return _equals(stack, hidden, last)
    if char == "," and (stack[-1:] not in ("(", "[") if stack else not hidden):
        return None
    if char == "{" and not at_statement_level:
        return None  # no brace inside an expression: ``translate([18, 25() {``, ``x = difference() {``
    if char == ";":
        if stack and stack[-1] not in ("{", VALUE):
            return None
        if not stack and hidden:  # an older bracket or value: taken to be the value this ends
            return (CODE, stack, hidden - 1, ";", NUMBER_NONE, "")
        return (CODE, stack[:-1] if stack[-1:] == VALUE else stack, hidden, ";", NUMBER_NONE, "")
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
    word_char = char.isalnum() or char in "_$"
    if last == OPERAND_END and number == NUMBER_NONE and word_char:
        return None  # ``panel.y translate(``, ``s difference()``: two operands with nothing between
    if at_statement_level and last in STATEMENT_ENDS and word_char:
        number = HEAD + ("" if _keyword_prefix(char) else OTHER_WORD)  # a statement's first name
    number = _number_after(number, char)
    return None if number is None else (CODE, stack, hidden, char, number, "")


def _statement_allows(stack: str, last: str, number, char: str) -> bool:
    """What may come at a statement's start, after its first name, or after leading digits."""
    word_char = char.isalnum() or char in "_$"
    if number == HEAD_DIGITS:  # ``5size`` is a name, ``16.4;`` no statement
        return char.isalpha() or char == "_" or char.isdigit()
    if last == HEAD_END or (_is_head(number) and not word_char):
        return char in "(=" or (_is_head(number) and number[1:] in WORD_KEYWORDS)
    if _at_statement_level(stack) and last in STATEMENT_ENDS:
        return char.isalnum() or char in STATEMENT_STARTS
    return True


def _equals(stack: str, hidden: int, last: str) -> tuple | None:
    """After ``=``: an assignment at statement level opens a :data:`VALUE`; a second one in it, or
    one directly inside ``[ ]``, must turn out to be ``==``; elsewhere (arguments, ``<=``, ``!=``)
    it is read as it is."""
    if _at_statement_level(stack) and last not in COMPARING:
        stack += VALUE
        if len(stack) > STACK_KEPT:
            stack, hidden = stack[1:], hidden + 1
        return (CODE, stack, hidden, "=", NUMBER_NONE, "")
    if stack[-1:] in (VALUE, "[") and last not in COMPARING:  # a list holds no assignment: ``[0, $fn = 32]``
        return (CODE, stack, hidden, "=", NUMBER_NONE, "=")
    return (CODE, stack, hidden, "=", NUMBER_NONE, "")


def _at_statement_level(stack: str) -> bool:
    """Outside brackets, or directly inside ``{ }``: where statements are written."""
    return not stack or stack[-1] == "{"


def _is_head(number) -> bool:
    return isinstance(number, str) and number.startswith(HEAD)


def _keyword_prefix(word: str) -> bool:
    return any(keyword.startswith(word) for keyword in WORD_KEYWORDS)


def _ended(last: str, number) -> str:
    """``last`` once the name or number being read (``number``) ends in a space or a comment."""
    if number == NUMBER_NONE:
        return last
    word = number[1:] if _is_head(number) else number
    if word in WORD_KEYWORDS:
        return KEYWORD_END
    return HEAD_END if _is_head(number) else OPERAND_END


def _number_after(number, char: str):
    """What is being read after ``char``: a number state, a word (:data:`OTHER_WORD` or the start of
    a keyword, after :data:`HEAD` when it began a statement), or None for a second ``.`` in a number."""
    if char == ".":
        if number == NUMBER_FRACTION:
            return None
        return NUMBER_FRACTION if number in (NUMBER_INT, NUMBER_NONE) else NUMBER_NONE
    head = HEAD if _is_head(number) or number == HEAD_DIGITS else ""  # ``25US10`` began a statement
    if isinstance(number, str):
        number = number[len(head):]
    if char.isdigit():
        if isinstance(number, str):
            return head + OTHER_WORD
        return NUMBER_INT if number == NUMBER_NONE else number
    if char.isalpha() or char in "_$":
        word = (number if isinstance(number, str) else OTHER_WORD if number != NUMBER_NONE else "") + char
        return head + (word if _keyword_prefix(word) else OTHER_WORD)
    return NUMBER_NONE
