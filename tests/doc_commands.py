"""The commands that README.md and docs/*.md show, read from their code blocks.

`documented()` returns every invocation of a `scripts/*.py` in a fenced code
block, in the order a reader meets them, with the shell's part done here:
backslash continuations joined, comments and a trailing `&` dropped,
variables set earlier in the block (`G="..."`) substituted, and the body of
a `for v in a b c; do ... done` loop written out once per value.
tests/test_doc_commands.py runs or checks each of them.
"""

import dataclasses
import pathlib
import re
import shlex

ROOT = pathlib.Path(__file__).resolve().parents[1]
DOCS = ("README.md", *sorted(f"docs/{p.name}" for p in (ROOT / "docs").glob("*.md")))
_SCRIPT = re.compile(r"^scripts/(\w+)\.py$")
_ASSIGNMENT = re.compile(r"^([A-Za-z_]\w*)=(.*)$")
_FOR = re.compile(r"^for (\w+) in (.+?);\s*do$")


@dataclasses.dataclass(frozen=True)
class Command:
    """One documented invocation.

    Attributes:
      doc: the file it is shown in, relative to the repository.
      line: its first line there.
      env: the variables set before it on its line (`TF_CONFIG=... python ...`).
      script: the script's name, without folder and `.py`.
      args: its arguments, as the shell passes them.
    """

    doc: str
    line: int
    env: tuple
    script: str
    args: tuple
    repeat: int = 0  # the same line's k-th command (a loop's k-th value)

    @property
    def name(self) -> str:
        return f"{self.doc}:{self.line}:{self.script}" + (f"#{self.repeat}" if self.repeat else "")

    def flag(self, name: str, default=None):
        """The value of `--name=value` or `--name value` (the last one given), `True` for a bare `--name`."""
        value = default
        for i, arg in enumerate(self.args):
            if arg == f"--{name}":
                following = self.args[i + 1] if i + 1 < len(self.args) else ""
                value = following if following and not following.startswith("--") else True
            elif arg.startswith(f"--{name}="):
                value = arg.split("=", 1)[1]
        return value

    def flag_names(self) -> list:
        return [arg[2:].split("=", 1)[0] for arg in self.args if arg.startswith("--")]


def code_blocks(text: str):
    """(first line number, lines) of each fenced block of shell commands (not Python)."""
    lines, block, start, language = text.splitlines(), None, 0, ""
    for number, line in enumerate(lines, start=1):
        fence = re.match(r"^\s*```(\w*)", line)
        if fence and block is None:
            block, start, language = [], number + 1, fence.group(1)
        elif fence:
            if language not in ("python", "py", "json", "text"):
                yield start, block
            block = None
        elif block is not None:
            block.append(line)


def _logical_lines(start: int, lines: list):
    """(line number, text) with backslash continuations joined."""
    pending, first = "", start
    for number, line in enumerate(lines, start=start):
        if not pending:
            first = number
        if line.rstrip().endswith("\\"):
            pending += line.rstrip()[:-1] + " "
            continue
        yield first, pending + line
        pending = ""
    if pending:
        yield first, pending


def _expand(text: str, variables: dict) -> str:
    return re.sub(r"\$\{?(\w+)\}?", lambda m: variables.get(m.group(1), m.group(0)), text)


def _words(text: str, variables: dict) -> list:
    """The shell's words of a line: a bare `$G` splits into its value's words (quotes
    inside the value stay, as the shell leaves them); `$v` inside a word is replaced."""
    words = []
    for word in shlex.split(text, comments=True):
        bare = re.fullmatch(r"\$\{?(\w+)\}?", word)
        if bare and bare.group(1) in variables:
            words += variables[bare.group(1)].split()
        else:
            words.append(_expand(word, variables))
    return words


def _commands(doc: str, number: int, text: str, variables: dict) -> list:
    words = _words(text, variables)
    # `a && b`: each part is a command of its own (the setup before a run).
    parts, current = [], []
    for word in words:
        if word in ("&&", ";"):
            parts.append(current)
            current = []
        elif word != "&":
            current.append(word)
    parts.append(current)
    found = []
    for part in parts:
        env = []
        while part and _ASSIGNMENT.match(part[0]):
            env.append(part.pop(0))
        if len(part) >= 2 and part[0].endswith("python") and _SCRIPT.match(part[1]):
            found.append(Command(doc, number, tuple(env), _SCRIPT.match(part[1]).group(1), tuple(part[2:])))
    return found


def commands_of(doc: str, text: str) -> list:
    """The script invocations of one document's code blocks, in order."""
    found = []
    for start, block in code_blocks(text):
        variables, loop = {}, None
        for number, line in _logical_lines(start, block):
            stripped = line.strip()
            if not stripped or stripped.startswith("#"):
                continue
            if loop is not None:
                if stripped == "done":
                    name, values, body = loop
                    for value in values:
                        for body_number, body_line in body:
                            found += _commands(doc, body_number, body_line, {**variables, name: value})
                    loop = None
                else:
                    loop[2].append((number, stripped))
                continue
            header = _FOR.match(stripped)
            if header:
                loop = (header.group(1), _words(header.group(2), variables), [])
                continue
            assignment = _ASSIGNMENT.match(stripped)
            if assignment and "scripts/" not in stripped:  # `G="..."`: a variable for the commands after it
                words = shlex.split(stripped, comments=True)
                if len(words) == 1:
                    variables[assignment.group(1)] = _expand(words[0].split("=", 1)[1], variables)
                continue
            if "scripts/" in stripped:  # other lines of a block may be output, not shell
                found += _commands(doc, number, stripped, variables)
    return found


def documented() -> list:
    """Every documented script invocation of README.md and docs/*.md."""
    found, lines = [], {}
    for doc in DOCS:
        for command in commands_of(doc, (ROOT / doc).read_text(encoding="utf-8")):
            where = (command.doc, command.line, command.script)
            found.append(dataclasses.replace(command, repeat=lines.get(where, 0)))
            lines[where] = lines.get(where, 0) + 1
    return found
