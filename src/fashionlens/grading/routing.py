"""Sorting rules: an item record (``fashionlens/item/v1``) → a route (reuse, repair, export, recycle) with reasons.

The facility edits a YAML rules file; :func:`load_rules` reads and validates it once (every problem
is reported together, naming the rule and the field) and returns :class:`Rules`, whose
:meth:`Rules.route` gives ``{"decision", "reasons", "rules"}`` for one record. The language is
documented for facility staff in ``docs/sorting_rules.md``; in short:

.. code-block:: yaml

    name: my-facility
    version: 3
    strategy: first_match            # or most_severe (then `severity` orders the routes)
    define:                          # named conditions, used as {use: high-value-fibre}
      high-value-fibre:
        any:
          - composition.fibres.wool: {at_least: 80}
          - composition.fibres.cashmere: {at_least: 50}
    rules:
      - name: large-hole
        route: recycle
        when:
          damage.area_share.hole: {at_least: 0.03}
        reason: "hole covering {damage.area_share.hole:.1%} of the garment"
    default:
      route: reuse
      reason: "no damage rule matched"

Semantics, decided here once:

* **Paths** are dotted keys into the record (``grades.condition.id``; a digit segment indexes a
  list). Three derived paths exist: ``composition.fibres.<fibre>`` is that fibre's percent (0 when
  the label lists other fibres only), ``composition.main_percent`` the main fibre's percent and
  ``damage.count.<type>`` the number of damage regions of that type over all views (``any`` counts
  all types).
* **Missing values**: a path that leads nowhere or to ``null`` (e.g. no ``composition`` because
  there was no label photo) makes every test on it false — ``!=`` and ``not_in`` included; only
  ``exists: false`` is true for it. A ``composition.fibres.<fibre>`` test is missing (false) when
  there is no composition at all, and sees 0 when the label does not list that fibre.
* **Comparisons**: ``<``, ``<=``, ``>``, ``>=`` need numbers (a numeric string in the record such
  as ``"3"`` counts as a number; any other value is an error for that record); ``==``, ``!=``,
  ``in``, ``not_in`` compare scalars, strings ignoring case. Lists/objects never equal a scalar.
* **Decision**: with ``first_match`` (default) rules are tried top to bottom and the first match
  decides; with ``most_severe`` the matching rule whose route comes first in ``severity`` (default
  recycle, export, repair, reuse) decides, ties going to the earlier rule. Either way every matched
  rule's reason is listed — the deciding one first, then the others in file order; one whose route
  differs from the decision ends with ``(rule 'NAME' suggests ROUTE)``. Nothing matched → the
  ``default`` route and its reason.

Nothing is evaluated with ``eval``: conditions are compiled into small test objects and reason
templates are parsed with :class:`string.Formatter`, their fields resolved as paths.
"""

from __future__ import annotations

import difflib
import importlib.resources
import json
import logging
import math
import re
import string
from collections.abc import Iterable, Iterator, Mapping, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any, BinaryIO

from fashionlens.grading.item import DAMAGE_TYPES, ITEM_SCHEMA, ITEM_SCHEMAS_READ, ROUTES, empty_item
from fashionlens.io.safe_yaml import (
    YamlInputError,
    load_yaml,
    load_yaml_file,
    short_repr,
)

log = logging.getLogger(__name__)

DEFAULT_RULES_RESOURCE = "data/default_rules.yaml"
STRATEGIES: tuple[str, ...] = ("first_match", "most_severe")
DEFAULT_SEVERITY: tuple[str, ...] = ("recycle", "export", "repair", "reuse")

#: operator spelling → canonical operator. The word forms need no YAML quoting.
OPERATORS: dict[str, str] = {
    "==": "==", "is": "==",
    "!=": "!=", "is_not": "!=",
    "<": "<", "below": "<",
    "<=": "<=", "at_most": "<=",
    ">": ">", "above": ">",
    ">=": ">=", "at_least": ">=",
    "in": "in", "not_in": "not_in",
    "exists": "exists",
}
_ORDERED = frozenset({"<", "<=", ">", ">="})
_GROUPS = ("all", "any", "not", "use")
TOP_KEYS: tuple[str, ...] = ("name", "version", "description", "strategy", "severity", "define", "rules", "default")
RULE_KEYS: tuple[str, ...] = ("name", "route", "when", "reason", "description")
DEFAULT_KEYS: tuple[str, ...] = ("route", "reason")
RECORD_KEYS: tuple[str, ...] = tuple(empty_item("x", []))
_PATH_RE = re.compile(r"^[A-Za-z_][A-Za-z0-9_-]*(\.[A-Za-z0-9_-]+)*$")
_COUNT_TYPES: tuple[str, ...] = (*DAMAGE_TYPES, "any")

#: Largest rules file :func:`load_rules` reads, in bytes.
MAX_RULES_BYTES = 1_000_000
#: Largest width and precision a reason's format may ask for (``{x:>100}``, ``{x:.100}``).
MAX_FORMAT_WIDTH = 100
#: Longest reason template, in characters.
MAX_TEMPLATE_CHARS = 500
#: Longest rendered reason, in characters (longer ones are cut and end with ``...``).
MAX_REASON_CHARS = 1000
#: Deepest nesting of conditions (all/any/not and named conditions used inside each other).
MAX_CONDITION_DEPTH = 32
#: Most problems a :class:`RulesError` message lists (``problems`` keeps them all).
MAX_LISTED_PROBLEMS = 50
#: Checking stops once this many problems are found (a file of thousands of broken rules costs no more).
MAX_PROBLEMS = 500
#: Longest item line :func:`read_item_lines` passes on, in bytes.
MAX_ITEM_LINE_BYTES = 4 * 2 ** 20
# [[fill]align][sign][z][#][0][width][grouping][.precision][type] (the format-spec mini-language)
_SPEC_RE = re.compile(r"^(?:.?[<>=^])?[-+ ]?z?#?0?(?P<width>\d*)[,_]?(?:\.(?P<precision>\d+))?[bcdeEfFgGnosxX%]?$",
                      re.DOTALL)


def _q(value: Any, limit: int = 120) -> str:
    """A user value quoted for an error message: its ``repr``, cut to ``limit`` characters."""
    return short_repr(value, limit)


def _key(value: Any) -> str:
    """A mapping key as it appears in a ``where`` prefix (cut to 60 characters)."""
    text = value if isinstance(value, str) else short_repr(value, 60)
    return text if len(text) <= 60 else text[:57] + "..."


class RulesError(ValueError):
    """A rules file is invalid. ``problems`` lists every problem found, one message each."""

    def __init__(self, problems: Sequence[str], source: str = "<rules>") -> None:
        self.problems = list(problems)
        self.source = source
        n = len(self.problems)
        listed = self.problems[:MAX_LISTED_PROBLEMS]
        more = f"\n  ... and {n - len(listed)} more" if n > len(listed) else ""
        super().__init__(f"{source}: {n} problem{'s' if n != 1 else ''} in the sorting rules:\n  - "
                         + "\n  - ".join(listed) + more)


class RuleEvaluationError(ValueError):
    """A record's value cannot be compared the way a rule asks (e.g. a word where a number is needed)."""


class _Missing:
    def __repr__(self) -> str:
        return "MISSING"


MISSING: Any = _Missing()
"""What :func:`resolve_path` returns for a path that leads nowhere or to ``null``."""


# --- paths ------------------------------------------------------------------------------------------
def resolve_path(item: Mapping[str, Any], path: str | Sequence[str]) -> Any:
    """The value at a dotted path of an item record, or :data:`MISSING` (see the module doc for derived paths)."""
    parts = tuple(path.split(".")) if isinstance(path, str) else tuple(path)
    if len(parts) >= 2 and parts[0] == "composition" and parts[1] in ("fibres", "main_percent"):
        comp = item.get("composition")
        if not isinstance(comp, Mapping):
            return MISSING
        fibres = [f for f in comp.get("fibres") or [] if isinstance(f, Mapping)]
        if parts[1] == "main_percent" and len(parts) == 2:
            percents = [_number(f.get("percent")) for f in fibres]
            percents = [p for p in percents if p is not None]
            return max(percents) if percents else MISSING
        if parts[1] == "fibres" and len(parts) == 3:
            want = parts[2].casefold()
            return float(sum(_number(f.get("percent")) or 0.0 for f in fibres
                             if str(f.get("fibre", "")).casefold() == want))
    if len(parts) == 3 and parts[:2] == ("damage", "count"):
        damage = item.get("damage")
        if not isinstance(damage, Mapping):
            return MISSING
        regions = [r for r in damage.get("regions") or [] if isinstance(r, Mapping)]
        return sum(1 for r in regions if parts[2] == "any" or r.get("type") == parts[2])
    value: Any = item
    for part in parts:
        if isinstance(value, Mapping):
            value = value.get(part, MISSING)
        elif isinstance(value, list) and part.isdigit() and int(part) < len(value):
            value = value[int(part)]
        else:
            return MISSING
        if value is None or value is MISSING:
            return MISSING
    return value


def _full(problems: list[str]) -> bool:
    """Enough problems found: the checks stop adding (and spending time on) more."""
    return len(problems) >= MAX_PROBLEMS


def _check_path(path: object, where: str, problems: list[str]) -> tuple[str, ...] | None:
    if _full(problems):
        return None
    if not isinstance(path, str) or not _PATH_RE.match(path):
        problems.append(f"{where}: expected a dotted path into the item record such as 'damage.area_share.hole'; "
                        f"got {_q(path)}")
        return None
    parts = tuple(path.split("."))
    if parts[0] not in RECORD_KEYS:
        problems.append(f"{where}: unknown record field {_q(parts[0])} in path {_q(path)}; expected one of "
                        f"{', '.join(RECORD_KEYS)}{_did_you_mean(parts[0], RECORD_KEYS)}")
        return None
    if len(parts) == 3 and parts[0] == "damage" and parts[1] in ("area_share", "count"):
        allowed = DAMAGE_TYPES if parts[1] == "area_share" else _COUNT_TYPES
        if parts[2] not in allowed:
            problems.append(f"{where}: unknown damage type {_q(parts[2])} in path {_q(path)}; expected one of "
                            f"{', '.join(allowed)}{_did_you_mean(parts[2], allowed)}")
            return None
    if len(parts) == 3 and parts[:2] == ("composition", "fibres"):
        fibres = _fibre_names()
        if fibres and parts[2] not in fibres:
            problems.append(f"{where}: unknown fibre {_q(parts[2])} in path {_q(path)}; expected a taxonomy material "
                            f"({', '.join(fibres)}){_did_you_mean(parts[2], fibres)}")
            return None
    return parts


def _fibre_names() -> tuple[str, ...]:
    from fashionlens.taxonomy import load_taxonomy

    try:
        return tuple(load_taxonomy().attribute("material").values)
    except (KeyError, ValueError):  # a taxonomy without materials: accept any fibre name
        return ()


_OPERATOR_LOOKALIKES = {"=>": ">=", "=<": "<=", "≥": ">=", "≤": "<=", "=": "==", "<>": "!=", "≠": "!=",
                        "not in": "not_in", "notin": "not_in", "exist": "exists"}


def _listing(names: Sequence[Any], most: int = 20) -> str:
    """``a, b, c`` for an error message: at most ``most`` names, each cut to 60 characters."""
    shown = ", ".join(_key(n) for n in names[:most])
    return shown + (f", ... ({len(names)} in all)" if len(names) > most else "")


def _operator_hint(op: Any) -> str:
    if not isinstance(op, str):
        return ""
    text = op.strip()
    if text in _OPERATOR_LOOKALIKES:
        return f" (did you mean {_OPERATOR_LOOKALIKES[text]!r}?)"
    return _did_you_mean(text.lower(), OPERATORS, cutoff=0.5)


def _did_you_mean(word: Any, choices: Iterable[str], cutoff: float = 0.6) -> str:
    choices = list(choices)
    if not isinstance(word, str) or len(word) > 100 or len(choices) > 200:  # a plausible typo among few names
        return ""
    close = difflib.get_close_matches(word, choices, n=1, cutoff=cutoff)
    return f" (did you mean {close[0]!r}?)" if close else ""


# --- values -----------------------------------------------------------------------------------------
def _number(value: Any) -> float | None:
    if isinstance(value, bool):
        return None
    if isinstance(value, (int, float)):
        return float(value)
    if isinstance(value, str):
        try:
            x = float(value.strip())
        except ValueError:
            return None
        return x if math.isfinite(x) else None
    return None


def _norm(value: Any) -> tuple[str, Any] | None:
    """A comparable key for a scalar: numbers (and numeric strings) as floats, other strings case-folded."""
    if isinstance(value, bool):
        return ("bool", value)
    n = _number(value)
    if n is not None:
        return ("num", n)
    if isinstance(value, str):
        return ("str", value.strip().casefold())
    return None


def _is_scalar(value: Any) -> bool:
    return isinstance(value, (str, int, float, bool)) and not (isinstance(value, float) and not math.isfinite(value))


# --- conditions -------------------------------------------------------------------------------------
@dataclass(frozen=True)
class _Test:
    path: tuple[str, ...]
    op: str
    operand: Any

    def __call__(self, item: Mapping[str, Any], rule: str) -> bool:
        value = resolve_path(item, self.path)
        if self.op == "exists":
            return (value is not MISSING) == self.operand
        if value is MISSING:
            return False
        if self.op in _ORDERED:
            x = _number(value)
            if x is None:
                raise RuleEvaluationError(
                    f"rule {_q(rule)}: {'.'.join(self.path)} {self.op} {self.operand} needs a number; "
                    f"the record has {_q(value)} ({type(value).__name__})")
            return {"<": x < self.operand, "<=": x <= self.operand,
                    ">": x > self.operand, ">=": x >= self.operand}[self.op]
        key = _norm(value) if _is_scalar(value) else None
        if key is None:
            return False
        if self.op == "==":
            return key == _norm(self.operand)
        if self.op == "!=":
            return key != _norm(self.operand)
        members = {_norm(o) for o in self.operand}
        return (key in members) if self.op == "in" else (key not in members)


@dataclass(frozen=True)
class _All:
    parts: tuple[Any, ...]

    def __call__(self, item: Mapping[str, Any], rule: str) -> bool:
        return all(p(item, rule) for p in self.parts)


@dataclass(frozen=True)
class _Any:
    parts: tuple[Any, ...]

    def __call__(self, item: Mapping[str, Any], rule: str) -> bool:
        return any(p(item, rule) for p in self.parts)


@dataclass(frozen=True)
class _Not:
    part: Any

    def __call__(self, item: Mapping[str, Any], rule: str) -> bool:
        return not self.part(item, rule)


class _Compiler:
    """Turns ``when``/``define`` YAML into test objects, collecting every problem."""

    def __init__(self, defines: Mapping[str, Any], problems: list[str]) -> None:
        self.raw_defines = defines
        self.defines: dict[str, Any] = {}
        self.problems = problems
        self._active: list[str] = []
        self._depth = 0

    def define(self, name: str) -> Any:
        if name in self.defines:
            return self.defines[name]
        if name in self._active:
            cycle = " → ".join(_key(n) for n in [*self._active[self._active.index(name):], name])
            self.problems.append(f"define {_q(name)}: refers to itself ({cycle})")
            return None
        self._active.append(name)
        node = self.condition(self.raw_defines[name], f"define {_q(name)}")
        self._active.pop()
        self.defines[name] = node
        return node

    def condition(self, spec: Any, where: str) -> Any:
        if _full(self.problems):
            return None
        if self._depth >= MAX_CONDITION_DEPTH:
            self.problems.append(f"{where}: conditions nest deeper than {MAX_CONDITION_DEPTH} levels (counting named "
                                 "conditions used inside each other); expected a flatter condition")
            return None
        self._depth += 1
        try:
            return self._condition(spec, where)
        finally:
            self._depth -= 1

    def _condition(self, spec: Any, where: str) -> Any:
        if not isinstance(spec, Mapping) or not spec:
            self.problems.append(f"{where}: expected a mapping of conditions (path: test, or all/any/not/use); "
                                 f"got {_q(spec)}")
            return None
        parts = []
        for key, value in spec.items():
            here = f"{where}.{_key(key)}"
            if key in ("all", "any"):
                if not isinstance(value, list) or not value:
                    self.problems.append(f"{here}: expected a non-empty list of conditions; got {_q(value)}")
                    continue
                subs = [self.condition(v, f"{here}[{i}]") for i, v in enumerate(value)]
                parts.append((_All if key == "all" else _Any)(tuple(subs)))
            elif key == "not":
                parts.append(_Not(self.condition(value, here)))
            elif key == "use":
                if not isinstance(value, str) or value not in self.raw_defines:
                    names = list(self.raw_defines)
                    self.problems.append(f"{here}: unknown named condition {_q(value)}; expected one of the names "
                                         f"under 'define' ({_listing(names) or 'none defined'})"
                                         f"{_did_you_mean(value, names)}")
                    continue
                parts.append(self.define(value))
            else:
                parts.extend(self.tests(key, value, here))
        return parts[0] if len(parts) == 1 else _All(tuple(parts))

    def tests(self, path: Any, spec: Any, where: str) -> list[_Test]:
        if isinstance(path, str) and path.casefold() in _GROUPS:
            self.problems.append(f"{where}: group keys are lower case ({', '.join(_GROUPS)}); got {_q(path)}")
            return []
        parts = _check_path(path, where, self.problems)
        if isinstance(spec, Mapping):
            if not spec:
                self.problems.append(f"{where}: expected at least one operator ({', '.join(OPERATORS)}); got {{}}")
                return []
            tests = [self.test(parts, op, operand, where) for op, operand in spec.items()]
            return [t for t in tests if t is not None]
        shorthand = "in" if isinstance(spec, list) else "=="
        test = self.test(parts, shorthand, spec, where)
        return [test] if test is not None else []

    def test(self, parts: tuple[str, ...] | None, op: Any, operand: Any, where: str) -> _Test | None:
        if _full(self.problems):
            return None
        canonical = OPERATORS.get(op) if isinstance(op, str) else None
        if canonical is None:
            self.problems.append(f"{where}: unknown operator {_q(op)}; expected one of {', '.join(OPERATORS)}"
                                 f"{_operator_hint(op)}")
            return None
        bad = None
        if canonical == "exists":
            if not isinstance(operand, bool):
                bad = "true or false"
        elif canonical in _ORDERED:
            if isinstance(operand, bool) or not isinstance(operand, (int, float)) or not math.isfinite(operand):
                bad = "a number"
        elif canonical in ("in", "not_in"):
            if not isinstance(operand, list) or not operand or not all(_is_scalar(o) for o in operand):
                bad = "a non-empty list of numbers or words"
        elif operand is None:
            bad = "a number, word or true/false (test for absence with 'exists: false')"
        elif not _is_scalar(operand):
            bad = "a number, word or true/false"
        if bad is not None:
            self.problems.append(f"{where}: operator {_q(op)} expects {bad}; got {_q(operand)} "
                                 f"({type(operand).__name__})")
            return None
        if parts is None:
            return None
        return _Test(parts, canonical, float(operand) if canonical in _ORDERED else operand)


# --- reason templates -------------------------------------------------------------------------------
@dataclass(frozen=True)
class _Template:
    text: str
    pieces: tuple[tuple[str, tuple[str, ...] | None, str, str | None], ...]  # literal, path, spec, conversion

    def render(self, item: Mapping[str, Any]) -> str:
        """The reason for ``item``, at most :data:`MAX_REASON_CHARS` characters (a longer one ends ``...``)."""
        out = []
        for literal, path, spec, conversion in self.pieces:
            out.append(literal)
            if path is None:
                continue
            value = resolve_path(item, path)
            if value is MISSING:
                out.append("unknown")
                continue
            if not _is_scalar(value) and value is not None:  # a list or object from the record: quoted, cut
                value = short_repr(value, MAX_REASON_CHARS)
            elif isinstance(value, str) and len(value) > MAX_REASON_CHARS:
                value = value[:MAX_REASON_CHARS]
            if conversion == "r":
                value = repr(value)
            elif conversion in ("s", "a"):
                value = str(value) if conversion == "s" else ascii(value)
            try:
                out.append(format(value, spec))
            except (ValueError, TypeError):
                out.append(str(value))
        text = "".join(out)
        return text if len(text) <= MAX_REASON_CHARS else text[: MAX_REASON_CHARS - 3] + "..."


def _compile_template(text: Any, where: str, problems: list[str]) -> _Template | None:
    if _full(problems):
        return None
    if not isinstance(text, str) or not text.strip():
        problems.append(f"{where}: expected a non-empty text (it may use {{path}} fields); got {_q(text)}")
        return None
    if len(text) > MAX_TEMPLATE_CHARS:
        problems.append(f"{where}: expected a text of at most {MAX_TEMPLATE_CHARS} characters; got {len(text):,} "
                        f"characters: {_q(text, 80)}")
        return None
    try:
        parsed = list(string.Formatter().parse(text))
    except ValueError as exc:
        problems.append(f"{where}: bad template {_q(text)}: {exc} (write {{{{ and }}}} for literal braces)")
        return None
    pieces = []
    ok = True
    for literal, field, spec, conversion in parsed:
        if field is None:
            pieces.append((literal, None, "", None))
            continue
        if field == "" or "[" in field:
            problems.append(f"{where}: template field {{{field}}} must be a dotted path into the record, "
                            f"e.g. {{damage.area_share.hole:.0%}}")
            ok = False
            continue
        parts = _check_path(field, f"{where} {{{field}}}", problems)
        spec = spec or ""
        if conversion not in (None, "r", "s", "a"):
            problems.append(f"{where}: unknown conversion !{conversion} for {{{field}}}; expected !r, !s or !a")
            ok = False
        if "{" in spec:
            problems.append(f"{where}: nested fields in the format of {{{field}}} are not supported; got {_q(spec)}")
            ok = False
        elif spec and (problem := _spec_problem(spec)):
            problems.append(f"{where}: bad format {_q(spec)} for {{{field}}}: {problem}")
            ok = False
        if parts is None:
            ok = False
        pieces.append((literal, parts, spec, conversion))
    return _Template(text, tuple(pieces)) if ok else None


def _spec_problem(spec: str) -> str | None:
    """Why a format spec is refused (``None`` when it is fine): unparseable, or width/precision over the bound."""
    match = _SPEC_RE.match(spec)
    if match is None:
        return "expected e.g. '.0%', '.1f' or '.2f'"
    for part in ("width", "precision"):
        digits = match.group(part) or ""
        if len(digits) > 3 or (digits and int(digits) > MAX_FORMAT_WIDTH):
            shown = digits if len(digits) <= 12 else digits[:9] + "..."
            return f"{part} {shown} is too large; expected at most {MAX_FORMAT_WIDTH}"
    if not _spec_ok(spec):
        return "expected e.g. '.0%', '.1f' or '.2f'"
    return None


def _spec_ok(spec: str) -> bool:
    for sample in (0.5, 3, "text"):
        try:
            format(sample, spec)
            return True
        except (ValueError, TypeError):
            pass
    return False


# --- rules ------------------------------------------------------------------------------------------
@dataclass(frozen=True)
class Rule:
    """One validated rule: ``route`` when ``condition`` holds, explained by the ``reason`` template."""

    name: str
    route: str
    condition: Any
    reason: _Template
    description: str | None = None

    def matches(self, item: Mapping[str, Any]) -> bool:
        return bool(self.condition(item, self.name))


@dataclass(frozen=True)
class Rules:
    """A validated rules file. Build with :func:`load_rules` or :func:`validate_rules`."""

    name: str
    version: str
    strategy: str
    severity: tuple[str, ...]
    rules: tuple[Rule, ...]
    default_route: str
    default_reason: _Template
    description: str | None = None
    source: str = "<rules>"

    @property
    def label(self) -> str:
        """``name/version``: what a routed record's ``route.rules`` says."""
        return f"{self.name}/{self.version}"

    def matches(self, item: Mapping[str, Any]) -> list[Rule]:
        """Every rule whose condition holds for ``item``, in file order."""
        _check_item(item)
        return [rule for rule in self.rules if rule.matches(item)]

    def route(self, item: Mapping[str, Any]) -> dict[str, Any]:
        """``{"decision": route, "reasons": [str], "rules": "name/version"}`` for one item record.

        Raises:
            TypeError: ``item`` is not a mapping.
            ValueError: ``item`` has another ``schema`` than ``fashionlens/item/v1`` or ``v2``.
            RuleEvaluationError: a rule compares a value the record holds in an unusable type.
        """
        matched = self.matches(item)
        if not matched:
            reasons = [self.default_reason.render(item)]
            below = damage_below_rules(item)
            if below:  # the page shows these regions: the reason must not read as if there were none
                reasons.append(below)
            unsure = unsure_grades(item)
            if unsure:  # a rule on these grades could not fire: the default is a guess a person should confirm
                reasons.append(unsure)
            return {"decision": self.default_route, "reasons": reasons, "rules": self.label}
        if self.strategy == "most_severe":
            decider = min(matched, key=lambda r: self.severity.index(r.route))
        else:
            decider = matched[0]
        reasons = [decider.reason.render(item)]
        for rule in matched:
            if rule is decider:
                continue
            text = rule.reason.render(item)
            if rule.route != decider.route:
                text += f" (rule '{rule.name}' suggests {rule.route})"
            reasons.append(text)
        return {"decision": decider.route, "reasons": reasons, "rules": self.label}

    def summary(self) -> dict[str, Any]:
        """What ``fashionlens route --check`` prints: counts per route, strategy, rule names."""
        per_route = {r: sum(1 for rule in self.rules if rule.route == r) for r in ROUTES}
        return {"rules": self.label, "source": self.source, "strategy": self.strategy,
                "severity": list(self.severity), "n_rules": len(self.rules), "rules_per_route": per_route,
                "default": self.default_route, "rule_names": [r.name for r in self.rules]}


def unsure_grades(item: Mapping[str, Any]) -> str | None:
    """The reason added when no rule matched while some grades are unsure (item schema v2: ``id`` null, below
    the operating point): ``"unsure, so no rule could use them: condition, usage — a person should check"``;
    None when every grade is sure or absent."""
    grades = item.get("grades")
    if not isinstance(grades, Mapping):
        return None
    names = sorted(k for k, v in grades.items()
                   if isinstance(v, Mapping) and v.get("uncertain") is True and v.get("id") is None)
    return f"unsure, so no rule could use them: {', '.join(names)} — a person should check" if names else None


def damage_below_rules(item: Mapping[str, Any]) -> str | None:
    """The reason added when no rule matched although damage regions were found: what was found,
    below every rule's threshold (``"damage found, below every rule's threshold: pilling on 0.7% of the
    garment (1 region)"``), or None when the record lists no damage region."""
    damage = item.get("damage")
    regions = damage.get("regions") if isinstance(damage, Mapping) else None
    if not isinstance(regions, list):
        return None
    counts: dict[str, int] = {}
    for region in regions:
        if isinstance(region, Mapping) and isinstance(region.get("type"), str):
            counts[region["type"]] = counts.get(region["type"], 0) + 1
    if not counts:
        return None
    shares = damage.get("area_share") if isinstance(damage.get("area_share"), Mapping) else {}
    parts = []
    for kind, n in counts.items():
        share = shares.get(kind)
        where = f" on {share:.1%} of the garment" if isinstance(share, (int, float)) and share > 0 else ""
        parts.append(f"{kind}{where} ({n} region{'s' if n != 1 else ''})")
    return "damage found, below every rule's threshold: " + ", ".join(parts)


def _check_item(item: Any) -> None:
    if not isinstance(item, Mapping):
        raise TypeError(f"expected an item record (a JSON object, schema {ITEM_SCHEMA!r}); got {type(item).__name__}")
    schema = item.get("schema")
    if schema is not None and schema not in ITEM_SCHEMAS_READ:
        raise ValueError(f"expected an item record with schema {' or '.join(map(repr, ITEM_SCHEMAS_READ))}; "
                         f"got schema {_q(schema)}")


def _check_keys(spec: Mapping[str, Any], allowed: Sequence[str], where: str, problems: list[str]) -> None:
    for key in spec:
        if _full(problems):
            return
        if key not in allowed:
            problems.append(f"{where}: unknown key {_q(key)}; expected one of {', '.join(allowed)}"
                            f"{_did_you_mean(key, allowed)}")


def _check_route(route: Any, where: str, problems: list[str]) -> bool:
    if route in ROUTES:
        return True
    if _full(problems):
        return False
    problems.append(f"{where}: unknown route {_q(route)}; expected one of {', '.join(ROUTES)}"
                    f"{_did_you_mean(route, ROUTES)}")
    return False


def _check_identity(data: Mapping[str, Any], problems: list[str]) -> tuple[Any, Any, Any]:
    """``(name, version, description)`` of the rules, each problem appended to ``problems``."""
    name = data.get("name")
    if not isinstance(name, str) or not name.strip():
        problems.append(f"name: expected a non-empty text naming these rules; got {_q(name)}")
    version = data.get("version")
    if isinstance(version, bool) or not isinstance(version, (str, int, float)) or str(version).strip() == "":
        problems.append(f"version: expected a number or text (raise it on every edit); got {_q(version)}")
    description = data.get("description")
    if description is not None and not isinstance(description, str):
        problems.append(f"description: expected text; got {_q(description)}")
    return name, version, description


def _check_strategy(data: Mapping[str, Any], problems: list[str]) -> tuple[Any, list[str]]:
    """``(strategy, severity)``; a bad severity is reported and replaced by :data:`DEFAULT_SEVERITY`."""
    strategy = data.get("strategy", "first_match")
    if strategy not in STRATEGIES:
        problems.append(f"strategy: expected one of {', '.join(STRATEGIES)}; got {_q(strategy)}"
                        f"{_did_you_mean(strategy, STRATEGIES)}")
    severity = data.get("severity", list(DEFAULT_SEVERITY))
    if (not isinstance(severity, list) or not all(isinstance(r, str) for r in severity)
            or sorted(severity) != sorted(ROUTES)):
        problems.append(f"severity: expected every route exactly once, most severe first, e.g. "
                        f"{list(DEFAULT_SEVERITY)}; got {_q(severity)}")
        severity = list(DEFAULT_SEVERITY)
    return strategy, severity


def _compile_defines(data: Mapping[str, Any], problems: list[str]) -> _Compiler:
    """A condition compiler knowing the ``define`` section's named conditions (each compiled once)."""
    defines = data.get("define", {}) or {}
    if not isinstance(defines, Mapping) or not all(isinstance(k, str) for k in defines):
        problems.append(f"define: expected a mapping of name → condition; got {_q(defines)}")
        defines = {}
    compiler = _Compiler(defines, problems)
    for define_name in defines:
        if _full(problems):
            break
        compiler.define(define_name)
    return compiler


def _compile_rule(raw: Any, i: int, compiler: _Compiler, seen: dict[str, int], problems: list[str]) -> Rule | None:
    """Rule ``i`` of the ``rules`` list, or None when it has problems (appended to ``problems``).

    ``seen`` maps the rule names met so far to their positions (this rule's name is added).
    """
    rule_name = raw.get("name") if isinstance(raw, Mapping) else None
    where = f"rules[{i}]" + (f" {_q(rule_name, 60)}" if isinstance(rule_name, str) and rule_name.strip() else "")
    if not isinstance(raw, Mapping):
        problems.append(f"{where}: expected a mapping with name, route, when, reason; got {_q(raw)}")
        return None
    _check_keys(raw, RULE_KEYS, where, problems)
    missing = [k for k in ("name", "route", "when", "reason") if k not in raw]
    if missing:
        problems.append(f"{where}: missing {', '.join(missing)} (a rule needs name, route, when and reason)")
    if not isinstance(rule_name, str) or not rule_name.strip():
        if "name" in raw:
            problems.append(f"{where}: name: expected a non-empty text; got {_q(rule_name)}")
        rule_name = f"rules[{i}]"
    elif rule_name in seen:
        problems.append(f"{where}: name {_q(rule_name)} is already used by rules[{seen[rule_name]}]")
    else:
        seen[rule_name] = i
    route_ok = "route" in raw and _check_route(raw["route"], f"{where}: route", problems)
    condition = compiler.condition(raw["when"], f"{where}: when") if "when" in raw else None
    reason = _compile_template(raw["reason"], f"{where}: reason", problems) if "reason" in raw else None
    rule_description = raw.get("description")
    if route_ok and condition is not None and reason is not None:
        return Rule(rule_name, raw["route"], condition, reason,
                    rule_description if isinstance(rule_description, str) else None)
    return None


def _compile_rules(data: Mapping[str, Any], compiler: _Compiler, problems: list[str]) -> list[Rule]:
    """The rules of the ``rules`` list that compiled (stops early once there are too many problems)."""
    rules: list[Rule] = []
    raw_rules = data.get("rules")
    if not isinstance(raw_rules, list):
        problems.append(f"rules: expected a list of rules (each with name, route, when, reason); got {_q(raw_rules)}")
        raw_rules = []
    seen: dict[str, int] = {}
    for i, raw in enumerate(raw_rules):
        if _full(problems):
            break
        rule = _compile_rule(raw, i, compiler, seen, problems)
        if rule is not None:
            rules.append(rule)
    return rules


def _check_default(data: Mapping[str, Any], problems: list[str]) -> tuple[Any, _Template | None]:
    """``(default, its compiled reason)``: the route and reason used when no rule matches."""
    default = data.get("default")
    default_reason = None
    if not isinstance(default, Mapping):
        problems.append(f"default: expected a mapping with route and reason (used when no rule matches); "
                        f"got {_q(default)}")
    else:
        _check_keys(default, DEFAULT_KEYS, "default", problems)
        _check_route(default.get("route"), "default: route", problems)
        default_reason = _compile_template(default.get("reason"), "default: reason", problems)
    return default, default_reason


def validate_rules(data: Any, *, source: str = "<rules>") -> Rules:
    """Validate parsed rules (the YAML as Python data) and compile them.

    Raises:
        RulesError: listing every problem, each naming the rule (by name and position) and the field.
    """
    problems: list[str] = []
    if not isinstance(data, Mapping):
        raise RulesError([f"expected a mapping with keys {', '.join(TOP_KEYS)}; got {type(data).__name__}"], source)
    _check_keys(data, TOP_KEYS, "top level", problems)
    name, version, description = _check_identity(data, problems)
    strategy, severity = _check_strategy(data, problems)
    compiler = _compile_defines(data, problems)
    rules = _compile_rules(data, compiler, problems)
    default, default_reason = _check_default(data, problems)

    if _full(problems):
        problems.append(f"stopped checking after {MAX_PROBLEMS} problems; fix these and check again")
    if problems or default_reason is None or not isinstance(default, Mapping):
        raise RulesError(problems, source)
    return Rules(name=str(name).strip(), version=str(version), strategy=str(strategy), severity=tuple(severity),
                 rules=tuple(rules), default_route=default["route"], default_reason=default_reason,
                 description=description, source=source)


def load_rules(path: str | Path | None = None) -> Rules:
    """Read and validate a YAML rules file; ``None`` = the shipped default rules.

    The file is read with :func:`fashionlens.io.safe_yaml.load_yaml`: at most :data:`MAX_RULES_BYTES`,
    UTF-8, no anchors or aliases, bounded nesting.

    Raises:
        FileNotFoundError: ``path`` does not exist.
        RulesError: the file is too large, not UTF-8, not YAML (or uses anchors/aliases), or the rules
            are invalid (every problem listed).
    """
    try:
        if path is None:
            resource = importlib.resources.files("fashionlens.grading").joinpath(DEFAULT_RULES_RESOURCE)
            source = "fashionlens:grading/" + DEFAULT_RULES_RESOURCE
            data = load_yaml(resource.read_bytes(), source=source, max_bytes=MAX_RULES_BYTES)
        else:
            p = Path(path)
            source = str(p)
            if not p.is_file():
                raise FileNotFoundError(f"expected a sorting rules file (YAML); {str(p)!r} does not exist")
            data = load_yaml_file(p, max_bytes=MAX_RULES_BYTES)
    except YamlInputError as exc:
        where = f"line {exc.line}: " if exc.line is not None else ""
        raise RulesError([f"{where}{exc.problem}"], source) from None
    rules = validate_rules(data, source=source)
    log.debug("loaded %d sorting rules from %s", len(rules.rules), source)
    return rules


@dataclass(frozen=True)
class OverlongLine:
    """Stands for an input line longer than the limit of :func:`read_item_lines` (its bytes were skipped)."""

    size: int
    limit: int


def read_item_lines(stream: BinaryIO, max_line_bytes: int = MAX_ITEM_LINE_BYTES) -> Iterator[bytes | OverlongLine]:
    """The lines of a binary JSONL stream, holding at most ``max_line_bytes`` (+ 1) bytes of one line in memory.

    A longer line is skipped and stands as an :class:`OverlongLine` (so line numbers stay right).
    """
    while True:
        line = stream.readline(max_line_bytes + 1)
        if not line:
            return
        if len(line) <= max_line_bytes or line.endswith(b"\n"):
            yield line
            continue
        size = len(line)
        while not line.endswith(b"\n"):
            line = stream.readline(2 ** 16)
            if not line:
                break
            size += len(line)
        yield OverlongLine(size, max_line_bytes)


def _error_record(n: int, message: str) -> dict[str, Any]:
    return {"schema": ITEM_SCHEMA, "item_id": None, "route": None, "error": f"line {n}: {message}"}


def route_lines(lines: Iterable[str | bytes | OverlongLine], rules: Rules) -> Iterator[dict[str, Any]]:
    """Route JSONL item records: one output record per non-blank input line, in order.

    Each record comes back with ``route`` filled. A line that is too long (:class:`OverlongLine`), not
    UTF-8 (for ``bytes`` lines), not JSON, not an item record or that a rule cannot evaluate gives an
    error record instead (``route`` null, ``error`` saying which line and why; an item's other fields
    are kept when it was readable), and routing goes on.
    """
    for n, line in enumerate(lines, 1):
        if isinstance(line, OverlongLine):
            yield _error_record(n, f"expected an item record of at most {line.limit:,} bytes; "
                                   f"got a line of {line.size:,} bytes")
            continue
        if isinstance(line, bytes):
            try:
                line = line.decode("utf-8")
            except UnicodeDecodeError as exc:
                yield _error_record(n, f"not UTF-8 text: byte {line[exc.start:exc.start + 1]!r} at column "
                                       f"{exc.start + 1}")
                continue
        if not line.strip():
            continue
        try:
            item = json.loads(line)
        except json.JSONDecodeError as exc:
            yield _error_record(n, f"not JSON: {exc}")
            continue
        except RecursionError:
            yield _error_record(n, "not JSON: nested too deeply")
            continue
        try:
            route = rules.route(item)
        except (TypeError, ValueError) as exc:
            base = dict(item) if isinstance(item, Mapping) else {"schema": ITEM_SCHEMA, "item_id": None}
            earlier = base.get("error")
            message = f"line {n}: routing failed: {exc}"
            yield {**base, "route": None, "error": f"{earlier}; {message}" if earlier else message}
            continue
        yield {**item, "route": route}
