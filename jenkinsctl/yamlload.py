"""A strict YAML loader for configuration files.

PyYAML's safe_load is safe against code execution but still: keeps the last
of two duplicate keys silently, expands alias chains ("billion laughs") into
structures that are cheap to build and ruinous to walk, and forgets where a
value came from.  This loader rejects the first two and records the line and
column of every key, so errors can point into the file.
"""

from __future__ import annotations

from typing import Any

import yaml

from jenkinsctl.errors import ConfigError

# A config that expands to more nodes than this is an alias bomb, not a
# config: the largest realistic file is a few hundred nodes.
MAX_EXPANDED_NODES = 20_000
# The schema nests five levels; far deeper is a mistake or an attack, and
# every recursive walk after parsing (validation, defaults) would hit
# Python's recursion limit on it.
MAX_DEPTH = 64

Path = tuple  # a key path such as ("agents", 0, "name")


class _Loader(yaml.SafeLoader):
    pass


def _construct_mapping(loader: _Loader, node: yaml.MappingNode, deep: bool = False) -> dict:
    # Check the keys written in this mapping, before merge keys (<<) pull in
    # values that this mapping is allowed to override.
    seen: dict[Any, yaml.Node] = {}
    for key_node, _ in node.value:
        if key_node.tag == "tag:yaml.org,2002:merge":
            continue
        key = loader.construct_object(key_node, deep=True)
        try:
            hash(key)
        except TypeError:
            raise yaml.constructor.ConstructorError(
                None, None, "a mapping key must be a plain value", key_node.start_mark) from None
        if key in seen:
            first = seen[key].start_mark.line + 1
            raise _DuplicateKey(key, key_node.start_mark, first)
        seen[key] = key_node
    loader.flatten_mapping(node)
    return yaml.SafeLoader.construct_mapping(loader, node, deep=deep)


_Loader.add_constructor(yaml.resolver.BaseResolver.DEFAULT_MAPPING_TAG, _construct_mapping)


class _DuplicateKey(Exception):
    def __init__(self, key: Any, mark: yaml.Mark, first_line: int) -> None:
        self.key, self.mark, self.first_line = key, mark, first_line


def _expanded_size(node: yaml.Node, memo: dict[int, int]) -> int:
    """Node count once aliases are expanded, computed without expanding."""
    key = id(node)
    if key in memo:
        return memo[key]
    memo[key] = 1  # guards against recursive aliases
    if isinstance(node, yaml.MappingNode):
        total = 1 + sum(_expanded_size(k, memo) + _expanded_size(v, memo) for k, v in node.value)
    elif isinstance(node, yaml.SequenceNode):
        total = 1 + sum(_expanded_size(v, memo) for v in node.value)
    else:
        total = 1
    memo[key] = min(total, MAX_EXPANDED_NODES + 1)
    return memo[key]


def _too_deep(root: yaml.Node) -> yaml.Node | None:
    """The first node nested deeper than MAX_DEPTH, found without recursion."""
    stack = [(root, 1)]
    seen: set[int] = set()
    while stack:
        node, depth = stack.pop()
        if depth > MAX_DEPTH:
            return node
        if id(node) in seen:
            continue
        seen.add(id(node))
        if isinstance(node, yaml.MappingNode):
            stack.extend((v, depth + 1) for pair in node.value for v in pair)
        elif isinstance(node, yaml.SequenceNode):
            stack.extend((v, depth + 1) for v in node.value)
    return None


def _depth_error(source: str, mark: yaml.Mark | None) -> ConfigError:
    return _mark_error(source, mark, f"values are nested more than {MAX_DEPTH} levels deep",
                       hint="a configuration nests a few levels; look for runaway brackets or indentation")


def _positions(node: yaml.Node, path: Path, out: dict[Path, tuple[int, int]]) -> None:
    """Record (line, column), 1-based, for every key path in the document."""
    if isinstance(node, yaml.MappingNode):
        for k, v in node.value:
            if isinstance(k, yaml.ScalarNode):
                p = path + (k.value,)
                out.setdefault(p, (k.start_mark.line + 1, k.start_mark.column + 1))
                _positions(v, p, out)
    elif isinstance(node, yaml.SequenceNode):
        for i, v in enumerate(node.value):
            p = path + (i,)
            out.setdefault(p, (v.start_mark.line + 1, v.start_mark.column + 1))
            _positions(v, p, out)


def _mark_error(source: str, mark: yaml.Mark | None, message: str, hint: str | None = None) -> ConfigError:
    if mark is None:
        return ConfigError(f"{source}: {message}", hint=hint, file=source)
    line, col = mark.line + 1, mark.column + 1
    return ConfigError(f"{source}:{line}:{col}: {message}", hint=hint, file=source, line=line, column=col)


def load_yaml(data: bytes, source: str) -> tuple[Any, dict[Path, tuple[int, int]]]:
    """Parse one YAML document strictly; return it and its key positions."""
    try:
        text = data.decode("utf-8")
    except UnicodeDecodeError as exc:
        line = data[: exc.start].count(b"\n") + 1
        col = exc.start - (data.rfind(b"\n", 0, exc.start) + 1) + 1
        raise ConfigError(f"{source}:{line}:{col}: byte 0x{data[exc.start]:02x} is not valid UTF-8",
                          hint="save the file as UTF-8", file=source, line=line, column=col) from None
    if text.startswith("\ufeff"):
        text = text[1:]
    loader = _Loader(text)
    try:
        try:
            root = loader.get_single_node()
        except RecursionError:
            # PyYAML's composer recurses once per level.
            raise _depth_error(source, getattr(loader, "marks", [None])[-1] if getattr(loader, "marks", None)
                               else None) from None
        if root is None:
            return None, {}
        deep = _too_deep(root)
        if deep is not None:
            raise _depth_error(source, deep.start_mark)
        if _expanded_size(root, {}) > MAX_EXPANDED_NODES:
            raise ConfigError(f"{source}: the document expands to more than {MAX_EXPANDED_NODES} values "
                              "through aliases", hint="this looks like an alias bomb; write the values out or "
                              "use fewer nested aliases", file=source)
        positions: dict[Path, tuple[int, int]] = {}
        _positions(root, (), positions)
        value = loader.construct_document(root)
    except _DuplicateKey as dup:
        raise _mark_error(source, dup.mark, f"duplicate key '{dup.key}' (first set on line {dup.first_line})",
                          hint="YAML keeps only the last one; remove or merge one of them") from None
    except yaml.MarkedYAMLError as exc:
        mark = exc.problem_mark or exc.context_mark
        problem = exc.problem or exc.context or "invalid YAML"
        hint = None
        if "\t" in problem or "'\\t'" in problem:
            hint = "YAML indents with spaces; replace the tabs with spaces"
        raise _mark_error(source, mark, problem, hint=hint) from None
    except yaml.YAMLError as exc:
        raise ConfigError(f"{source}: invalid YAML: {exc}", file=source) from None
    finally:
        loader.dispose()
    return value, positions
