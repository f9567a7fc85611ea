"""Load scenario YAML files into :class:`~twin.scenarios.schema.Scenario` values.

Every mistake a user can make in a scenario file (a missing file, YAML syntax, an unknown key, a
value out of range, a dangling reference) raises :class:`ScenarioError`, whose ``str()`` is a
ready-to-print message naming the file, the field path (``sites[2].lat_deg``), the line, the bad
value and what is allowed. The CLI prints it; no traceback.

YAML dialect: PyYAML's safe loader with the YAML 1.1 traps removed (YAML 1.2 core schema for
scalars). Booleans are only ``true``/``false`` (``grid_region: NO`` stays Norway, not
``False``); floats need a dot or an exponent (``1e5`` is a number, not a string); integers are
decimal (``12:30`` is not 750, ``010`` is not 8); timestamps stay strings (the schema parses
``start_utc`` and insists on an explicit time zone). Duplicate keys are errors. Numbers are
strict: a quoted ``"45"`` or a ``true`` where a number belongs is an error.
Anchors, aliases and merge keys (``<<: *defaults``; keys written beside it win) work as in
PyYAML's safe loader.
"""

from __future__ import annotations

import re
import types
import typing
from importlib import resources
from pathlib import Path
from typing import Any, NamedTuple

import yaml
from pydantic import BaseModel, ValidationError

from twin.physics.orbits import load_tle_file, parse_omm_text
from twin.scenarios.schema import Scenario, ScenarioProblems

__all__ = [
    "ScenarioError",
    "ScenarioInfo",
    "list_scenarios",
    "load_scenario",
    "packaged_scenario_path",
    "parse_scenario",
    "scenario_from_dict",
]


class ScenarioError(ValueError):
    """A scenario file is missing, unreadable or invalid. ``str()`` is the user message.

    Attributes: ``path`` (the file, or None), ``problems`` (one line per problem).
    """

    def __init__(self, message: str, *, path: Path | None = None, problems=()):
        self.path = path
        self.problems = list(problems)
        super().__init__(message)

    def format(self) -> str:
        """The message to print (same as ``str()``)."""
        return str(self)


class ScenarioInfo(NamedTuple):
    name: str
    description: str
    path: Path


# --------------------------------------------------------------------------------------------
# YAML
# --------------------------------------------------------------------------------------------


class _Loader(yaml.SafeLoader):
    """Safe loader: YAML 1.2 core-schema scalars, timestamps as strings, no duplicate keys."""


_Loader.yaml_implicit_resolvers = {
    first: [
        (tag, rx)
        for tag, rx in resolvers
        if tag.rsplit(":", 1)[-1] not in ("bool", "float", "int", "timestamp")
    ]
    for first, resolvers in yaml.SafeLoader.yaml_implicit_resolvers.items()
}
_Loader.add_implicit_resolver(
    "tag:yaml.org,2002:bool",
    re.compile(r"^(?:true|True|TRUE|false|False|FALSE)$"),
    list("tTfF"),
)
# YAML 1.2 core-schema integers: decimal only (no octal "010", no sexagesimal "12:30").
_Loader.add_implicit_resolver(
    "tag:yaml.org,2002:int", re.compile(r"^[-+]?(?:0|[1-9][0-9_]*)$"), list("-+0123456789")
)
# YAML 1.2 core-schema floats: a dot or an exponent (or both); .inf / .nan as in YAML 1.1.
_Loader.add_implicit_resolver(
    "tag:yaml.org,2002:float",
    re.compile(
        r"""^(?:[-+]?(?:[0-9][0-9_]*\.[0-9_]*|\.[0-9][0-9_]*)(?:[eE][-+]?[0-9]+)?
        |[-+]?[0-9][0-9_]*[eE][-+]?[0-9]+
        |[-+]?\.(?:inf|Inf|INF)
        |\.(?:nan|NaN|NAN))$""",
        re.X,
    ),
    list("-+0123456789."),
)


class _DuplicateKey(Exception):
    def __init__(self, key: str, mark: yaml.Mark):
        self.key, self.mark = key, mark


def _construct_mapping(loader: _Loader, node: yaml.MappingNode, deep: bool = False):
    seen: set = set()
    for key_node, _ in node.value:
        if key_node.tag == "tag:yaml.org,2002:merge":
            continue  # "<<: *defaults": SafeLoader merges it below; keys given here win
        key = loader.construct_object(key_node, deep=True)
        if key in seen:
            raise _DuplicateKey(str(key), key_node.start_mark)
        seen.add(key)
    return yaml.SafeLoader.construct_mapping(loader, node, deep=deep)


_Loader.add_constructor(yaml.resolver.BaseResolver.DEFAULT_MAPPING_TAG, _construct_mapping)

Loc = tuple[Any, ...]


def _positions(
    node: yaml.Node, loc: Loc = (), out: dict | None = None, seen: set | None = None
) -> dict[Loc, int]:
    """Map each field path to the 1-based line where its value (or key) starts.

    An alias (``*name``) is the very node of its anchor: each node is walked once, so a
    recursive anchor (``a: &x [*x]``) ends and repeated aliases cost nothing; paths below an
    alias take the line of the key that uses it.
    """
    out = {} if out is None else out
    seen = set() if seen is None else seen
    out.setdefault(loc, node.start_mark.line + 1)
    if id(node) in seen:
        return out
    seen.add(id(node))
    if isinstance(node, yaml.MappingNode):
        for key_node, value_node in node.value:
            key = key_node.value if isinstance(key_node, yaml.ScalarNode) else str(key_node)
            out[(*loc, key)] = key_node.start_mark.line + 1
            _positions(value_node, (*loc, key), out, seen)
    elif isinstance(node, yaml.SequenceNode):
        for i, item in enumerate(node.value):
            _positions(item, (*loc, i), out, seen)
    return out


def _parse_yaml(text: str, label: str) -> tuple[Any, dict[Loc, int]]:
    try:
        loader = _Loader(text)  # the reader rejects control characters (NUL, ...) here
    except yaml.reader.ReaderError as exc:
        line = text.count("\n", 0, exc.position) + 1
        raise ScenarioError(
            f"{label}: line {line}: character {chr(exc.character)!r} is not allowed in YAML "
            "(a binary file, or a stray control character?)"
        ) from None
    try:
        node = loader.get_single_node()
        if node is None:
            raise ScenarioError(f"{label}: the file is empty; a scenario is a YAML mapping")
        data = loader.construct_document(node)
    except _DuplicateKey as exc:
        raise ScenarioError(
            f"{label}: line {exc.mark.line + 1}, column {exc.mark.column + 1}: "
            f"duplicate key {exc.key!r} (each key may appear once per mapping)"
        ) from None
    except ScenarioError:
        raise
    except (ValueError, TypeError) as exc:  # a scalar the constructors cannot convert
        raise ScenarioError(f"{label}: unreadable value: {exc}") from None
    except yaml.YAMLError as exc:
        mark = getattr(exc, "problem_mark", None)
        where = f"line {mark.line + 1}, column {mark.column + 1}: " if mark else ""
        problem = getattr(exc, "problem", None) or str(exc)
        context = getattr(exc, "context", None)
        detail = f"{problem} ({context})" if context else problem
        raise ScenarioError(f"{label}: YAML syntax error at {where}{detail}") from None
    finally:
        loader.dispose()
    return data, _positions(node)


# --------------------------------------------------------------------------------------------
# Validation errors -> readable messages
# --------------------------------------------------------------------------------------------


def _loc_text(loc: Loc) -> str:
    out = ""
    for part in loc:
        if isinstance(part, int):
            out += f"[{part}]"
        else:
            out += ("." if out else "") + str(part)
    return out or "(top level)"


def _short(value: Any, limit: int = 80) -> str:
    text = repr(value)
    return text if len(text) <= limit else text[: limit - 3] + "..."


def _unwrap(annotation) -> list:
    """The concrete types inside Optional / Union / list / dict annotations."""
    origin = typing.get_origin(annotation)
    if origin is typing.Annotated:
        return _unwrap(typing.get_args(annotation)[0])
    if origin in (typing.Union, types.UnionType):
        out = []
        for arg in typing.get_args(annotation):
            if arg is not type(None):
                out += _unwrap(arg)
        return out
    return [annotation]


def _tagged(types: list, part) -> list:
    """The models of a discriminated union whose tag (a one-value Literal field) is ``part``.

    pydantic puts the tag in error locations (``weather.events.1.rain.rain_rate_mm_per_h``);
    the tag is not a key of the file.
    """
    if not isinstance(part, str):
        return []
    models = [tp for tp in types if isinstance(tp, type) and issubclass(tp, BaseModel)]
    if len(models) < 2 or any(part in tp.model_fields for tp in models):
        return []
    return [
        tp
        for tp in models
        if any(
            typing.get_origin(f.annotation) is typing.Literal
            and typing.get_args(f.annotation) == (part,)
            for f in tp.model_fields.values()
        )
    ]


def _walk(model: type[BaseModel], loc: Loc):
    """Walk ``loc`` through the schema.

    Returns (field info, types) of its last key, or None where the schema has no such key, and
    ``loc`` as a path of the file's keys: without the tags of discriminated unions, which
    pydantic puts in error locations but the file does not contain.
    """
    current: list = [model]
    info = None
    shown: list = []
    for depth, part in enumerate(loc):
        if tagged := _tagged(current, part):
            current = tagged
            continue
        shown.append(part)
        nxt: list = []
        for tp in current:
            if isinstance(part, int):
                if typing.get_origin(tp) is list:
                    nxt += _unwrap(typing.get_args(tp)[0])
            elif isinstance(tp, type) and issubclass(tp, BaseModel):
                if part in tp.model_fields:
                    info = tp.model_fields[part]
                    nxt += _unwrap(info.annotation)
        if not nxt:
            return None, (*shown, *loc[depth + 1 :])
        current = nxt
    return (info, current), tuple(shown)


def _field_at(model: type[BaseModel], loc: Loc):
    """Walk ``loc`` through the schema: (field info, annotation) of its last key, or None."""
    return _walk(model, loc)[0]


def _file_loc(model: type[BaseModel], loc: Loc) -> Loc:
    """``loc`` as a path of the file's keys: without the tags of discriminated unions."""
    return _walk(model, loc)[1]


def _known_keys(model: type[BaseModel], loc: Loc) -> list[str]:
    found = _field_at(model, loc) if loc else (None, [model])
    if not found:
        return []
    keys: list[str] = []
    for tp in found[1]:
        if isinstance(tp, type) and issubclass(tp, BaseModel):
            keys += list(tp.model_fields)
    return keys


_TYPE_WORDS = {float: "a number", int: "an integer", str: "a string", bool: "true or false"}


def _allowed(model: type[BaseModel], loc: Loc) -> str:
    """Describe what the schema accepts at ``loc``: range, choices or type."""
    found = _field_at(model, loc)
    if not found:
        return ""
    info, types = found
    words = []
    choices = [
        a for tp in types if typing.get_origin(tp) is typing.Literal for a in typing.get_args(tp)
    ]
    if choices:
        words.append("one of " + ", ".join(repr(a) for a in dict.fromkeys(choices)))
    for tp in types:
        if typing.get_origin(tp) is typing.Literal:
            continue
        elif isinstance(tp, type) and issubclass(tp, BaseModel):
            words.append(f"a mapping with keys {', '.join(tp.model_fields)}")
        elif typing.get_origin(tp) is list:
            words.append("a list")
        elif tp in _TYPE_WORDS:
            words.append(_TYPE_WORDS[tp])
        elif isinstance(tp, type):
            words.append(tp.__name__)
    text = " or ".join(dict.fromkeys(words))
    lo = hi = None
    lo_open = hi_open = False
    pattern = None
    for meta in info.metadata if info is not None else ():
        # annotated_types constraint objects (Ge, Gt, Le, Lt) and pydantic's string metadata
        if getattr(meta, "ge", None) is not None:
            lo = meta.ge
        elif getattr(meta, "gt", None) is not None:
            lo, lo_open = meta.gt, True
        if getattr(meta, "le", None) is not None:
            hi = meta.le
        elif getattr(meta, "lt", None) is not None:
            hi, hi_open = meta.lt, True
        if getattr(meta, "pattern", None):
            pattern = meta.pattern
    if lo is not None and hi is not None:
        text += f" in {'(' if lo_open else '['}{lo:g}, {hi:g}{')' if hi_open else ']'}"
    elif lo is not None:
        text += f" {'>' if lo_open else '>='} {lo:g}"
    elif hi is not None:
        text += f" {'<' if hi_open else '<='} {hi:g}"
    if pattern:
        text += f" matching {pattern}"
    if info is not None and info.description:
        text += f" ({info.description})"
    return text


def _problem_lines(model: type[BaseModel], exc: ValidationError) -> list[tuple[Loc, str]]:
    lines: list[tuple[Loc, str]] = []
    for err in exc.errors():
        loc: Loc = tuple(err["loc"])
        cause = (err.get("ctx") or {}).get("error")
        if isinstance(cause, ScenarioProblems):
            for p in cause.problems:
                full = _file_loc(model, (*loc, *p.loc))
                lines.append((full, f"{_loc_text(full)}: {p.message} (got {_short(p.value)})"))
            continue
        kind = err["type"]
        if kind in ("union_tag_invalid", "union_tag_not_found"):
            # a discriminated union (weather.events[i].kind): name the tag key, not the item
            key = str(err["ctx"]["discriminator"]).strip("'")
            tag_loc = (*_file_loc(model, loc), key)
            allowed = _allowed(model, (*loc, key))
            item = err["input"]
            if kind == "union_tag_not_found" or not isinstance(item, dict):
                text = f"required key is missing; expected {allowed}"
            else:
                text = f"unknown {key} (got {_short(item.get(key))}); allowed: {allowed}"
            lines.append((tag_loc, f"{_loc_text(tag_loc)}: {text}"))
            continue
        shown = _file_loc(model, loc)
        path = _loc_text(shown)
        if kind == "missing":
            allowed = _allowed(model, loc)
            lines.append((shown, f"{path}: required key is missing; expected {allowed}"))
        elif kind == "extra_forbidden":
            keys = _known_keys(model, loc[:-1])
            lines.append(
                (
                    shown,
                    f"{path}: unknown key {str(loc[-1])!r} (got {_short(err['input'])}); "
                    f"allowed keys here: {', '.join(keys)}",
                )
            )
        elif kind == "value_error":
            msg = err["msg"].removeprefix("Value error, ")
            lines.append((shown, f"{path}: {msg}"))
        else:
            allowed = "" if kind == "literal_error" else _allowed(model, loc)
            tail = f"; allowed: {allowed}" if allowed else ""
            lines.append((shown, f"{path}: {err['msg']} (got {_short(err['input'])}){tail}"))
    return lines


def _line_of(positions: dict[Loc, int], loc: Loc) -> int | None:
    while True:
        if loc in positions:
            return positions[loc]
        if not loc:
            return None
        loc = loc[:-1]


def _validation_error(
    label: str, path: Path | None, exc: ValidationError, positions: dict[Loc, int]
) -> ScenarioError:
    return _problems_error(label, path, _problem_lines(Scenario, exc), positions)


def _problems_error(
    label: str, path: Path | None, lines: list[tuple[Loc, str]], positions: dict[Loc, int]
) -> ScenarioError:
    located = [(_line_of(positions, loc), text) for loc, text in lines]
    located.sort(key=lambda item: (item[0] is None, item[0] or 0))
    problems = [f"line {line}: {text}" if line else text for line, text in located]
    count = f"{len(problems)} problem{'s' if len(problems) != 1 else ''}"
    message = f"{label} is not a valid scenario ({count}):\n" + "\n".join(
        f"  - {p}" for p in problems
    )
    return ScenarioError(message, path=path, problems=problems)


# --------------------------------------------------------------------------------------------
# Public API
# --------------------------------------------------------------------------------------------


def parse_scenario(text: str, *, base_dir: Path | None = None, label: str = "<string>"):
    """Validate scenario YAML ``text``; file paths inside resolve against ``base_dir``."""
    data, positions = _parse_yaml(text, label)
    return scenario_from_dict(data, base_dir=base_dir, label=label, _positions=positions)


def scenario_from_dict(
    data, *, base_dir: Path | None = None, label: str = "<dict>", _positions=None
) -> Scenario:
    """Validate an already-parsed scenario mapping (same errors as files, without lines).

    TLE/OMM files are located and parsed only with ``base_dir`` (the directory their relative
    paths refer to); without it their paths are taken as given.
    """
    positions = _positions or {}
    if not isinstance(data, dict):
        raise ScenarioError(
            f"{label}: the top level must be a mapping with keys "
            f"{', '.join(Scenario.model_fields)}; got a {type(data).__name__}"
        )
    context = {"base_dir": base_dir} if base_dir is not None else None
    try:
        scenario = Scenario.model_validate(data, context=context)
    except ValidationError as exc:
        raise _validation_error(label, None, exc, positions) from None
    if base_dir is not None:  # catalog paths were resolved and found: parse them too
        problems = _catalog_problems(scenario)
        if problems:
            raise _problems_error(label, None, problems, positions)
    return scenario


def _catalog_problems(scenario: Scenario) -> list[tuple[Loc, str]]:
    """Parse every constellation's TLE/OMM file; one problem per file that does not parse.

    The parsers of :mod:`twin.physics.orbits` check each element set (TLE: length, columns,
    checksum, with the file's line number; OMM: keys and values, with the record number), so
    ``qntwin validate`` reports a malformed catalog before a run trips on it.
    """
    problems: list[tuple[Loc, str]] = []
    for i, constellation in enumerate(scenario.constellations):
        for key in ("tle_file", "omm_file"):
            path = getattr(constellation, key)
            if path is None:
                continue
            loc: Loc = ("constellations", i, key)
            try:
                if key == "tle_file":
                    entries = load_tle_file(path)
                else:
                    entries = parse_omm_text(path.read_text(encoding="utf-8"), source=str(path))
            except UnicodeDecodeError as exc:
                message = f"{path} is not UTF-8 text (byte {exc.start}); is it an OMM file?"
            except ValueError as exc:
                message = str(exc)
            except OSError as exc:
                message = f"{path} cannot be read: {exc.strerror}"
            else:
                if entries:
                    continue
                message = f"{path} holds no element sets; a constellation needs at least one"
            fix = "a CelesTrak 3-line TLE file" if key == "tle_file" else "a CCSDS OMM file"
            problems.append((loc, f"{_loc_text(loc)}: {message} (expected {fix})"))
    return problems


def _packaged_dir() -> Path:
    return Path(str(resources.files("twin.scenarios")))


def packaged_scenario_path(name: str) -> Path | None:
    """Path of the packaged scenario file ``<name>.yaml``, or None."""
    candidate = _packaged_dir() / f"{name}.yaml"
    return candidate if candidate.is_file() else None


def load_scenario(path) -> Scenario:
    """Load and validate a scenario file.

    ``path`` is a file path, or the bare name of a packaged scenario (``"small"``) when no
    such file exists. Raises :class:`ScenarioError` with a printable message on any problem.
    """
    p = Path(path)
    if not p.exists() and p.suffix == "" and len(p.parts) == 1:
        packaged = packaged_scenario_path(p.name)
        if packaged is not None:
            p = packaged
    label = f"scenario file {str(p)!r}"
    if not p.exists():
        known = ", ".join(i.name for i in list_scenarios())
        raise ScenarioError(
            f"{label} not found; give a path to a YAML file or a packaged scenario name ({known})",
            path=p,
        )
    if not p.is_file():
        raise ScenarioError(f"{label} is not a file", path=p)
    try:
        text = p.read_text(encoding="utf-8")
    except UnicodeDecodeError as exc:
        raise ScenarioError(
            f"{label} is not UTF-8 text (byte {exc.start}); is it a YAML file?", path=p
        ) from None
    except OSError as exc:
        raise ScenarioError(f"{label} cannot be read: {exc.strerror}", path=p) from None
    try:
        return parse_scenario(text, base_dir=p.resolve().parent, label=label)
    except ScenarioError as exc:
        raise ScenarioError(str(exc), path=p, problems=exc.problems) from None


def list_scenarios() -> list[ScenarioInfo]:
    """The packaged scenarios, sorted by name: (name, description, path)."""
    out = []
    for path in sorted(_packaged_dir().glob("*.yaml")):
        try:
            data = yaml.load(path.read_text(encoding="utf-8"), Loader=_Loader)
        except (yaml.YAMLError, _DuplicateKey):
            data = None
        data = data if isinstance(data, dict) else {}
        name = str(data.get("name", path.stem))
        description = " ".join(str(data.get("description", "")).split())
        out.append(ScenarioInfo(name, description, path))
    return sorted(out, key=lambda info: info.name)
