"""Command-line options and environment variables of every service, declared once as a table.

Each service declares a :class:`Table`: its configuration dataclass, then one row per field::

    OPTIONS = Table(
        Config,
        option("-port", type=PORT, env="ORION_PORT", help="HTTP port"),
        option("-localIp", "-host", field="host", env="ORION_LOCALIP", help="address to listen on"),
        option("-multiservice", type=FLAG, env="ORION_MULTI_SERVICE", help="..."),
        option("--cmd-mode", type=Choice("legacy", "notification"), env=Prefix("IOTA_"), help="..."),
        guards_option("-guard"),
        ignored=Ignored("ignored", valued=("logDir",), flags=("fg",)),
    )
    Config(**OPTIONS.parse(argv, environ))   # or OPTIONS.build(argv, environ)

A row: the option's names (aliases; shown as written, matched with one or two dashes), the
dataclass field it sets (by default its first name in snake case: ``-corsMaxAge`` sets
``cors_max_age``, ``--cmd-mode`` ``cmd_mode``), its type (:class:`Text` by default,
:class:`Int` with bounds, :data:`FLAG`, :class:`Choice`, :class:`Repeated`), its environment
variables (names, or a :class:`Prefix`, a service's rule that names them after the field, or
both), a help text, an optional ``check`` (raises ValueError for a bad value) and ``shown``,
the default as the help prints it. The default itself is the dataclass field's: one place for
it. Rows that several services declare alike are made by one function each
(:func:`guards_option`, :func:`listen_option`, :func:`data_dir_option`,
:func:`log_level_option`; those of the HTTP services alone in ``ngsi/service_options.py``).

The command line: ``-opt value``, ``--opt value``, ``-opt=value``, ``--opt=value``; a flag
alone is on, ``-flag=false`` off; a valued option takes the next word whatever it is; a
repeated option adds an item each time (its variable: comma-separated items). The command
line wins over the environment, the environment over the dataclass default; the last of
repeated scalar options wins. ``-h``, ``-help`` and ``--help`` raise :class:`HelpRequested`;
anything wrong raises :class:`SettingsError`, with a message naming the option or variable
and the value. Pure: nothing here reads anything but the ``environ`` mapping it is given.
"""

from __future__ import annotations

import dataclasses
import re
import textwrap
from collections.abc import Callable, Mapping, Sequence
from typing import Any, Generic, TypeVar

from .destinations import parse_rules

T = TypeVar("T")
R = TypeVar("R")

INT_MAX = 2**31 - 1
HELP_NAMES = frozenset({"h", "help"})
_SPACE = " \t\r\n"  # ASCII only: str.strip() would also take Unicode spaces
_INTEGER = re.compile(r"([+-]?)([0-9]+)")  # [0-9]: ASCII digits, not "٣" nor "²" (int() takes the first)
_HUMP = re.compile(r"(?<=[a-z0-9])(?=[A-Z])")  # where camelCase words meet
_TRUE = ("true", "1", "yes", "on")
_FALSE = ("false", "0", "no", "off", "")


class SettingsError(ValueError):
    """An unknown option, a missing value, or a value that does not fit its option."""


class HelpRequested(SettingsError):
    """``-h``, ``-help`` or ``--help`` among the options: the caller shows :meth:`Table.help`."""

    def __init__(self) -> None:
        super().__init__("help requested")


# -- types: each turns one word into a value, or raises ValueError naming the word -----------


@dataclasses.dataclass(frozen=True)
class Text:
    """Any string, the empty one included."""

    metavar: str = "VALUE"

    def convert(self, raw: str) -> str:
        return raw


@dataclasses.dataclass(frozen=True)
class Int:
    """An integer between ``low`` and ``high``, in ASCII: an optional sign, then digits
    (no ``1_000``, no ``٣``, no ``²``); ASCII blanks around it are dropped."""

    low: int = 0
    high: int = INT_MAX
    metavar: str = "N"

    def convert(self, raw: str) -> int:
        match = _INTEGER.fullmatch(raw.strip(_SPACE))
        if match is None:
            raise ValueError(f"{raw!r} is not an integer")
        digits = match.group(2).lstrip("0") or "0"
        # no int() of a thousand digits: slow, and refused past 4300
        value = int(match.group(1) + digits) if len(digits) <= 20 else None
        if value is None or not self.low <= value <= self.high:
            raise ValueError(f"{raw!r} is not between {self.low} and {self.high}")
        return value


@dataclasses.dataclass(frozen=True)
class Flag:
    """On or off: alone on the command line, on; with a value (``=value``, or a variable),
    true/false, yes/no, on/off, 1/0 in any case (empty: off)."""

    metavar: str = ""

    def convert(self, raw: str) -> bool:
        lowered = raw.strip(_SPACE).lower()
        if lowered in _TRUE:
            return True
        if lowered in _FALSE:
            return False
        raise ValueError(f"{raw!r} is not a boolean (true/false, yes/no, on/off, 1/0)")


@dataclasses.dataclass(frozen=True, init=False)
class Choice:
    """One of the given words, as written."""

    choices: tuple[str, ...]

    def __init__(self, *choices: str) -> None:
        object.__setattr__(self, "choices", choices)

    @property
    def metavar(self) -> str:
        return "{" + "|".join(self.choices) + "}"

    def convert(self, raw: str) -> str:
        if raw not in self.choices:
            raise ValueError(f"{raw!r} is not one of {', '.join(self.choices)}")
        return raw


@dataclasses.dataclass(frozen=True)
class Repeated:
    """A tuple of non-empty strings: one item per occurrence of the option, or the
    variable's items separated by ``separator`` (blanks around items and empty items dropped)."""

    metavar: str = "VALUE"
    separator: str = ","

    def convert(self, raw: str) -> str:
        if not raw:
            raise ValueError("an empty value")
        return raw

    def split(self, raw: str) -> list[str]:
        return [item for item in (part.strip(_SPACE) for part in raw.split(self.separator)) if item]


Kind = Text | Int | Flag | Choice | Repeated
TEXT = Text()
FLAG = Flag()
PORT = Int(1, 65535, metavar="PORT")


# -- the rows ------------------------------------------------------------------------------


@dataclasses.dataclass(frozen=True)
class Option:
    """One row of a table (build it with :func:`option`)."""

    names: tuple[str, ...]  # as shown, e.g. ("-localIp", "-host") or ("--north-port",)
    field: str  # the dataclass field it sets
    type: Kind = TEXT
    env: tuple[str, ...] = ()  # read in this order when the command line does not set the field
    help: str = ""
    check: Callable[[Any], object] | None = None  # raises ValueError for a bad value (each item of a Repeated)
    shown: str | None = None  # the default as the help prints it; None: the dataclass default

    def value(self, raw: str, origin: str) -> Any:
        """One word of the command line (or a variable, except a Repeated's) as a value."""
        try:
            value = self.type.convert(raw)
            if self.check is not None:
                self.check(value)
        except ValueError as exc:
            raise SettingsError(f"{origin}: {exc}") from None
        return value

    def from_environment(self, raw: str, variable: str) -> Any:
        origin = f"environment variable {variable}"
        if isinstance(self.type, Repeated):
            return tuple(self.value(item, origin) for item in self.type.split(raw))
        return self.value(raw, origin)

    def render(self, value: Any, *, inline: bool = False, name: str | None = None) -> list[str]:
        """The command-line words that give this option ``value`` (``-name value``, or
        ``-name=value`` when ``inline``): ``parse`` reads them back as ``value``."""
        name = name or self.names[0]
        if isinstance(self.type, Flag):
            return [name] if value and not inline else [f"{name}={'true' if value else 'false'}"]
        words: list[str] = []
        for item in value if isinstance(self.type, Repeated) else (value,):
            words += [f"{name}={item}"] if inline else [name, str(item)]
        return words


def field_of(name: str) -> str:
    """The field a row sets when it names none: its first option name in snake case
    (``--north-host`` and ``-northHost`` set ``north_host``, ``-mqttURI`` ``mqtt_uri``), as
    argparse derives its ``dest``, so that a row does not spell the same name twice."""
    return _HUMP.sub("_", _bare(name)).replace("-", "_").lower()


@dataclasses.dataclass(frozen=True)
class Prefix:
    """``env=Prefix("IOTA_")``: the row's variable is the prefix, then its field in capitals
    (``IOTA_NORTH_PORT`` for ``north_port``): a service whose variables follow one rule
    states the rule once rather than spelling every variable."""

    text: str

    def variable(self, field: str) -> str:
        return self.text + field.upper()


# A row's environment variables, read in this order: names, or a service's Prefix rule, or
# both (``(Prefix("WAZIUP_RULES_"), "PERSEO_ENDPOINT_PORT")``: the rule's, then Perseo's name).
Variables = str | Prefix | tuple[str | Prefix, ...]


def option(
    *names: str,
    field: str | None = None,
    type: Kind = TEXT,  # noqa: A002 - the column's name in the table
    env: Variables = (),
    help: str = "",  # noqa: A002
    check: Callable[[Any], object] | None = None,
    shown: str | None = None,
) -> Option:
    """A row: ``option("-port", type=PORT, env="ORION_PORT", help="HTTP port")`` sets the
    field ``port`` (:func:`field_of`) unless ``field`` says otherwise."""
    field = field or field_of(names[0])
    rules = env if isinstance(env, tuple) else (env,)
    variables = tuple(rule.variable(field) if isinstance(rule, Prefix) else rule for rule in rules)
    return Option(names, field, type, variables, help, check, shown)


@dataclasses.dataclass(frozen=True)
class Ignored:
    """Options accepted for compatibility that change nothing: their names (no dash) go to
    the tuple ``field``. A ``valued`` one takes the next word unless it starts with ``-``."""

    field: str
    valued: tuple[str, ...] = ()
    flags: tuple[str, ...] = ()


def module_attribute(spec: str) -> None:
    """``check`` of a ``module:factory`` value (dotted module, then a name)."""
    module, colon, attribute = spec.partition(":")
    if not colon or not attribute.isidentifier() or not all(part.isidentifier() for part in module.split(".")):
        raise ValueError(f"{spec!r} is not module:factory")


def http_url(value: str) -> None:
    """``check`` of a URL the service will call: http(s), or empty (none)."""
    if value and not value.startswith(("http://", "https://")):
        raise ValueError(f"{value!r} is not an http(s) URL")


def destination_rules(value: str) -> None:
    """``check`` of a destination rule (``ngsi/destinations.py``: host, host:port, a network...)."""
    parse_rules(value)  # ValueError names the bad rule


def guards_option(*names: str) -> Option:
    """The request guards of a service (``ngsi/server/guards.py``), the same row everywhere."""
    return option(
        *names, field="guards", type=Repeated(metavar="MODULE:FACTORY"), env="WAZIUP_GUARDS", check=module_attribute,
        help="a request guard: the factory takes this Config and returns the guard; repeatable",
    )


def listen_option(*names: str, env: Variables) -> Option:
    """The address a server listens on (field ``host``), the same row in every service but
    for its names and variable."""
    return option(*names, field="host", type=Text("ADDRESS"), env=env, help="address to listen on")


def data_dir_option(*names: str, help: str) -> Option:  # noqa: A002
    """The platform's data directory (field ``data_dir``): ``WAZIUP_DATA_DIR`` in every
    service, so that one variable places the files of all of them."""
    return option(*names, field="data_dir", type=Text("DIR"), env="WAZIUP_DATA_DIR", help=help)


def log_level_option(name: str, env: Variables, check: Callable[[str], object] | None = None) -> Option:
    """A service's log level (field ``log_level``), the same row everywhere but for its name,
    its variables and the check of the services that refuse a level they do not know."""
    return option(name, field="log_level", type=Text("LEVEL"), env=env, check=check, help="log level")


def environment_secret(environ: Mapping[str, str], *variables: str) -> str:
    """The first of ``variables`` set (and not empty) in ``environ``, else "": a secret is
    read from the environment only, since a command line is visible to every local user."""
    return next((environ[variable] for variable in variables if environ.get(variable)), "")


# -- the table -----------------------------------------------------------------------------


def _bare(name: str) -> str:
    if not name.startswith("-") or name.startswith("---") or "=" in name or len(name.lstrip("-")) == 0:
        raise TypeError(f"option name {name!r}: expected -name or --name")
    return name[2:] if name.startswith("--") else name[1:]


class Table(Generic[T]):
    """The options of one command, filling the dataclass ``target``."""

    WIDTH = 100

    def __init__(
        self,
        target: type[T],
        *options: Option,
        ignored: Ignored | None = None,
        rest: str | None = None,
        usage: str = "[options]",
        about: str = "",
    ) -> None:
        """``rest``: the field that gets the words after ``--`` (a list); ``usage``: what
        follows the program's name in the help's first line; ``about``: a paragraph under it."""
        self.target, self.options, self.ignored, self.rest = target, options, ignored, rest
        self.usage, self.about = usage, about
        self._fields = {f.name: f for f in dataclasses.fields(target)}  # type: ignore[arg-type]
        self._rows: dict[str, Option] = {}  # bare name -> row
        self._ignored: dict[str, bool] = {}  # bare name -> takes a value
        fields = [row.field for row in options] + ([ignored.field] if ignored else []) + ([rest] if rest else [])
        for field in fields:
            if field not in self._fields:
                raise TypeError(f"{target.__name__} has no field {field!r}")
            if fields.count(field) > 1:
                raise TypeError(f"field {field!r} is set by two rows")
        names = [(name, row) for row in options for name in row.names]
        if ignored is not None:
            names += [("-" + name, name in ignored.valued) for name in (*ignored.valued, *ignored.flags)]
        for name, meaning in names:
            bare = _bare(name)
            if bare in self._rows or bare in self._ignored or bare in HELP_NAMES:
                raise TypeError(f"option {name!r} is declared twice")
            if isinstance(meaning, Option):
                self._rows[bare] = meaning
            else:
                self._ignored[bare] = meaning

    def parse(self, argv: Sequence[str], environ: Mapping[str, str]) -> dict[str, Any]:
        """The fields the command line or the environment set (the dataclass has the rest)."""
        values: dict[str, Any] = {}
        for row, origin, raw in self._read(argv, values):
            value = True if raw is None else row.value(raw, origin)
            values[row.field] = values.get(row.field, ()) + (value,) if isinstance(row.type, Repeated) else value
        for row in self.options:
            variable = next((v for v in row.env if v in environ), None)
            if row.field not in values and variable is not None:
                values[row.field] = row.from_environment(environ[variable], variable)
        return values

    def _read(self, argv: Sequence[str], values: dict[str, Any]) -> list[tuple[Option, str, str | None]]:
        """The command line's (row, origin, word; None for a flag alone), read before any is
        converted (so that ``--help`` anywhere shows the help); ignored options and the rest
        go to ``values``."""
        given: list[tuple[Option, str, str | None]] = []
        ignored: list[str] = []
        i = 0
        while i < len(argv):
            word = argv[i]
            i += 1
            if word == "--" and self.rest is not None:
                values[self.rest] = list(argv[i:])
                break
            if not word.startswith("-"):
                raise SettingsError(f"unexpected argument {word!r}")
            name, eq, inline = word[2 if word.startswith("--") else 1 :].partition("=")
            if name in HELP_NAMES:
                raise HelpRequested()
            if name in self._ignored:
                ignored.append(name)
                if self._ignored[name] and not eq and i < len(argv) and not argv[i].startswith("-"):
                    i += 1
                continue
            row = self._rows.get(name)
            if row is None:
                raise SettingsError(f"unknown option {word!r} (--help lists the options)")
            origin = f"option {word.partition('=')[0]}"
            if not eq and not isinstance(row.type, Flag):
                if i == len(argv):
                    raise SettingsError(f"{origin} needs a value")
                inline, eq = argv[i], "="
                i += 1
            given.append((row, origin, inline if eq else None))
        if ignored and self.ignored is not None:
            values[self.ignored.field] = tuple(ignored)
        return given

    def build(self, argv: Sequence[str], environ: Mapping[str, str]) -> T:
        return self.target(**self.parse(argv, environ))

    def default(self, field: str) -> Any:
        f = self._fields[field]
        if f.default_factory is not dataclasses.MISSING:
            return f.default_factory()
        return None if f.default is dataclasses.MISSING else f.default

    def help(self, prog: str) -> str:
        """The text of ``prog --help``: every option, its variables and its default."""
        lines = [f"usage: {prog} {self.usage}"]
        if self.about:
            lines += ["", *textwrap.wrap(self.about, self.WIDTH)]
        lines += ["", "options: -name value, --name value, -name=value or --name=value; a flag alone is on, "
                  "-flag=false off"]
        rows = [(", ".join(o.names) + (" " + o.type.metavar if o.type.metavar else ""), o) for o in self.options]
        width = min(max((len(left) for left, _ in rows), default=0), 30)
        indent = " " * (width + 4)
        for left, row in rows:
            first = f"  {left.ljust(width)}  "
            if len(first) > len(indent):
                lines.append(first.rstrip())
                first = indent
            notes = self._notes(row)
            if len(first) + len(row.help) + len(notes) < self.WIDTH:  # on one line, else the notes on their own
                lines.append(first + " ".join(filter(None, (row.help, notes))))
                continue
            wrapped = textwrap.wrap(row.help, self.WIDTH, initial_indent=first, subsequent_indent=indent)
            lines += (wrapped or [first.rstrip()]) + [indent + notes]
        if self.ignored is not None:
            lines += ["", "accepted for compatibility, changing nothing (a valued one takes one word):"]
            names = ", ".join("-" + name for name in self._ignored)
            lines += textwrap.wrap(names, self.WIDTH, initial_indent="  ", subsequent_indent="  ")
        lines += ["", "-h, -help, --help: this text"]
        return "\n".join(lines)

    def _notes(self, row: Option) -> str:
        """``[env VARIABLE; default VALUE]``"""
        notes = []
        if row.env:
            comma = f", {row.type.separator!r}-separated" if isinstance(row.type, Repeated) else ""
            notes.append("env " + " or ".join(row.env) + comma)
        notes.append("default " + (row.shown if row.shown is not None else _show(self.default(row.field))))
        return f"[{'; '.join(notes)}]"


def _show(value: Any) -> str:
    if isinstance(value, bool):
        return "on" if value else "off"
    if value is None or value == "" or value == () or value == []:
        return "none"
    if isinstance(value, (tuple, list)):
        return ",".join(map(str, value))
    return str(value)


def command_line(
    table: Table[Any],
    build: Callable[[Sequence[str]], R],
    argv: Sequence[str],
    *,
    prog: str,
    show: Callable[[str], object],
) -> R:
    """``build(argv)`` for a program's main: on ``--help``, ``show`` the table's help and exit
    0; on a :class:`SettingsError`, exit 1 with ``prog: message`` (SystemExit either way)."""
    try:
        return build(argv)
    except HelpRequested:
        show(table.help(prog))
        raise SystemExit(0) from None
    except SettingsError as exc:
        raise SystemExit(f"{prog}: {exc}") from None
