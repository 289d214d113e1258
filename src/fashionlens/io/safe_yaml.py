"""Read YAML from users (rules files, training configs) with bounded time and memory.

``yaml.safe_load`` is safe against code execution but not against resource exhaustion: a few
hundred bytes of nested anchors and aliases (the "billion laughs" document) expand into billions
of list elements as soon as anything walks the result (printing it in an error message, say), and
deeply nested brackets exhaust the stack. :func:`load_yaml` therefore

* refuses input over ``max_bytes`` (default :data:`MAX_YAML_BYTES`, 1 MB) before parsing it;
* refuses documents that use anchors or aliases (``&name`` / ``*name``) at all — none of the
  project's files need them, and refusing is simpler and safer than capping the expansion;
* refuses nesting deeper than ``max_depth`` (default :data:`MAX_YAML_DEPTH`) and documents of more
  than ``max_nodes`` values (default :data:`MAX_YAML_NODES`: building each costs PyYAML a few
  microseconds and a few hundred bytes);
* refuses numbers written with more than :data:`MAX_NUMBER_CHARS` characters (YAML 1.1 base-60
  numbers such as ``1:2:3`` cost quadratic time in their length);
* raises :class:`YamlInputError` (a ``ValueError``) for every problem, never another exception
  (the YAML error, a timestamp or integer the constructor rejects, invalid UTF-8 …), with a
  message of bounded length that names the source and, where known, the line.

The events are checked in a first pass over the libyaml event stream (fast, iterative, no nodes
built); only then is the document composed and constructed. :func:`short_repr` is the helper for
quoting user values in error messages (at most ``limit`` characters, never walking more than a
few levels of a structure).
"""

from __future__ import annotations

import reprlib
from pathlib import Path
from typing import Any

import yaml

#: Largest YAML input :func:`load_yaml` accepts, in bytes (UTF-8).
MAX_YAML_BYTES = 1_000_000
#: Deepest nesting of lists/mappings :func:`load_yaml` accepts.
MAX_YAML_DEPTH = 64
#: Most values (scalars, lists, mappings) in one document :func:`load_yaml` accepts.
MAX_YAML_NODES = 50_000
#: Longest number (int or float, as written) :func:`load_yaml` converts.
MAX_NUMBER_CHARS = 100
#: Longest quoted value :func:`short_repr` writes by default.
MAX_QUOTE_CHARS = 200


class _BoundedConstructor(yaml.constructor.SafeConstructor):
    """``SafeConstructor`` that refuses numbers over :data:`MAX_NUMBER_CHARS` characters."""

    def _check_number(self, node: yaml.ScalarNode) -> None:
        if isinstance(node.value, str) and len(node.value) > MAX_NUMBER_CHARS:
            raise yaml.constructor.ConstructorError(
                None, None, f"a number written with {len(node.value):,} characters; expected at most "
                f"{MAX_NUMBER_CHARS}", node.start_mark)

    def construct_yaml_int(self, node: yaml.ScalarNode) -> int:
        self._check_number(node)
        return super().construct_yaml_int(node)

    def construct_yaml_float(self, node: yaml.ScalarNode) -> float:
        self._check_number(node)
        return super().construct_yaml_float(node)


_BoundedConstructor.add_constructor("tag:yaml.org,2002:int", _BoundedConstructor.construct_yaml_int)
_BoundedConstructor.add_constructor("tag:yaml.org,2002:float", _BoundedConstructor.construct_yaml_float)


class _PureLoader(yaml.reader.Reader, yaml.scanner.Scanner, yaml.parser.Parser, yaml.composer.Composer,
                  _BoundedConstructor, yaml.resolver.Resolver):
    """PyYAML's pure-Python pipeline with the bounded safe constructor (used without libyaml)."""

    def __init__(self, stream: str) -> None:
        yaml.reader.Reader.__init__(self, stream)
        yaml.scanner.Scanner.__init__(self)
        yaml.parser.Parser.__init__(self)
        yaml.composer.Composer.__init__(self)
        _BoundedConstructor.__init__(self)
        yaml.resolver.Resolver.__init__(self)


_Loader: type[Any] = _PureLoader
if getattr(yaml, "__with_libyaml__", False):

    from yaml.cyaml import CParser

    class _CLoader(CParser, _BoundedConstructor, yaml.resolver.Resolver):  # type: ignore[misc]
        """libyaml's parser (about 5x faster) with the bounded safe constructor."""

        def __init__(self, stream: str) -> None:
            CParser.__init__(self, stream)
            _BoundedConstructor.__init__(self)
            yaml.resolver.Resolver.__init__(self)

    _Loader = _CLoader

_repr = reprlib.Repr()
_repr.maxlevel = 3
_repr.maxstring = MAX_QUOTE_CHARS
_repr.maxother = MAX_QUOTE_CHARS
_repr.maxlong = 60
_repr.maxdict = _repr.maxlist = _repr.maxtuple = _repr.maxset = _repr.maxfrozenset = 8


class YamlInputError(ValueError):
    """A YAML input cannot be used: too large, not UTF-8, not YAML, or using anchors/aliases or deep nesting.

    ``source`` names the input (a path or ``<yaml>``), ``line`` is 1-based where known (else ``None``)
    and ``problem`` is the message without the source.
    """

    def __init__(self, problem: str, source: str = "<yaml>", line: int | None = None) -> None:
        self.problem = problem
        self.source = source
        self.line = line
        where = source if line is None else f"{source}:{line}"
        super().__init__(f"{where}: {problem}")


def short_repr(value: Any, limit: int = MAX_QUOTE_CHARS) -> str:
    """``repr(value)`` cut to at most ``limit`` characters (``...`` marks a cut).

    Cheap for huge or shared structures: only a few levels and items of a container are walked.
    """
    text = _repr.repr(value)
    return text if len(text) <= limit else text[: max(limit - 3, 0)] + "..."


def _line(mark: Any) -> int | None:
    return None if mark is None else int(mark.line) + 1


def _check_events(text: str, source: str, max_depth: int, max_nodes: int) -> None:
    """Walk the event stream once, building nothing.

    Refuses anchors, aliases, nesting deeper than ``max_depth`` and more than ``max_nodes`` values.
    """
    depth = nodes = 0
    for event in yaml.parse(text, Loader=_Loader):
        if isinstance(event, yaml.AliasEvent):
            raise YamlInputError(
                f"YAML aliases are not allowed; got alias *{_clip(str(event.anchor), 60)} "
                "(write the value out in full instead of referring to an anchor)", source, _line(event.start_mark))
        anchor = getattr(event, "anchor", None)
        if anchor is not None:
            raise YamlInputError(
                f"YAML anchors are not allowed; got anchor &{_clip(str(anchor), 60)} "
                "(write the value out in full wherever it is needed)", source, _line(event.start_mark))
        if isinstance(event, yaml.NodeEvent):
            nodes += 1
            if nodes > max_nodes:
                raise YamlInputError(f"YAML document has over {max_nodes:,} values; expected a smaller document",
                                     source, _line(event.start_mark))
        if isinstance(event, yaml.CollectionStartEvent):
            depth += 1
            if depth > max_depth:
                raise YamlInputError(f"YAML nested deeper than {max_depth} levels; expected a flatter document",
                                     source, _line(event.start_mark))
        elif isinstance(event, (yaml.SequenceEndEvent, yaml.MappingEndEvent)):
            depth -= 1


def load_yaml(text: str | bytes, *, source: str = "<yaml>", max_bytes: int = MAX_YAML_BYTES,
              max_depth: int = MAX_YAML_DEPTH, max_nodes: int = MAX_YAML_NODES) -> Any:
    """Parse one YAML document from ``text`` (str, or UTF-8 bytes) into plain Python data.

    An empty document gives ``None``, as with ``yaml.safe_load``.

    Raises:
        YamlInputError: the input is larger than ``max_bytes``, not UTF-8, not YAML (or several
            documents), uses anchors/aliases, nests deeper than ``max_depth``, has more than
            ``max_nodes`` values, or holds a value the YAML types refuse (e.g. an impossible date, a
            number of over :data:`MAX_NUMBER_CHARS` characters).
    """
    if isinstance(text, bytes):
        if len(text) > max_bytes:
            raise YamlInputError(f"YAML input is {len(text):,} bytes; expected at most {max_bytes:,}", source)
        try:
            text = text.decode("utf-8")
        except UnicodeDecodeError as exc:
            line = text.count(b"\n", 0, exc.start) + 1
            raise YamlInputError(f"not UTF-8 text: byte {text[exc.start:exc.start + 1]!r} at offset {exc.start} "
                                 "(save the file as UTF-8)", source, line) from None
    elif len(text) > max_bytes or len(text.encode("utf-8", "surrogatepass")) > max_bytes:
        raise YamlInputError(f"YAML input is over {max_bytes:,} bytes; expected at most {max_bytes:,}", source)
    try:
        _check_events(text, source, max_depth, max_nodes)
        return yaml.load(text, Loader=_Loader)  # a safe loader; anchors and aliases were refused above
    except YamlInputError:
        raise
    except yaml.MarkedYAMLError as exc:
        mark = exc.problem_mark or exc.context_mark
        what = " ".join(p for p in (exc.context, exc.problem) if p) or type(exc).__name__
        raise YamlInputError(f"not valid YAML: {_clip(what)}", source, _line(mark)) from None
    except yaml.YAMLError as exc:
        raise YamlInputError(f"not valid YAML: {_clip(str(exc))}", source) from None
    except (ValueError, TypeError, LookupError, AttributeError, OverflowError, RecursionError) as exc:
        # the constructors' own refusals: an impossible date, an integer over Python's digit limit, an
        # empty "!!int" (IndexError), text that cannot be encoded (UnicodeError is a ValueError) ...
        raise YamlInputError(f"not valid YAML: a value cannot be read ({type(exc).__name__}: {_clip(str(exc))})",
                             source) from None


def read_text_bounded(path: str | Path, max_bytes: int, *, what: str = "file") -> bytes:
    """The bytes of ``path``, refusing (``YamlInputError``) a file of more than ``max_bytes`` without reading it all."""
    p = Path(path)
    with p.open("rb") as fh:
        data = fh.read(max_bytes + 1)
    if len(data) > max_bytes:
        raise YamlInputError(f"{what} is over {max_bytes:,} bytes; expected at most {max_bytes:,}", str(p))
    return data


def load_yaml_file(path: str | Path, *, max_bytes: int = MAX_YAML_BYTES, max_depth: int = MAX_YAML_DEPTH,
                   max_nodes: int = MAX_YAML_NODES) -> Any:
    """:func:`load_yaml` on the file at ``path`` (read at most ``max_bytes`` + 1 bytes).

    Raises:
        FileNotFoundError: ``path`` does not exist (other ``OSError`` as raised by ``open``).
        YamlInputError: as :func:`load_yaml`.
    """
    data = read_text_bounded(path, max_bytes, what="YAML file")
    return load_yaml(data, source=str(path), max_bytes=max_bytes, max_depth=max_depth, max_nodes=max_nodes)


def _clip(text: str, limit: int = 300) -> str:
    text = " ".join(text.split())
    return text if len(text) <= limit else text[: limit - 3] + "..."
