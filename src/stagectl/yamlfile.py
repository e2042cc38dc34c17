"""Reading the user's YAML strictly: a duplicate key is an error, and aliases cannot blow up.

PyYAML keeps the last of two equal keys without a word, so a second `projects:` would silently
drop every project of the first; and a handful of nested aliases ("billion laughs") expands into
more nodes than memory holds once the model walks them. Both are refused here, with the line.
"""

from __future__ import annotations

from typing import Any

import yaml
from yaml.constructor import ConstructorError
from yaml.nodes import MappingNode, Node, ScalarNode, SequenceNode

# A real environment has a few thousand nodes; this bound leaves room for any sane use of anchors.
MAX_EXPANDED_NODES = 200_000
MERGE_TAG = "tag:yaml.org,2002:merge"


class StrictLoader(yaml.SafeLoader):
    """SafeLoader that refuses duplicate mapping keys and alias expansions beyond a bound."""

    def get_single_node(self) -> Node | None:
        node = super().get_single_node()
        if node is not None:
            _check_expansion(node)
        return node

    def construct_mapping(self, node: MappingNode, deep: bool = False) -> dict[Any, Any]:
        if isinstance(node, MappingNode):
            seen: dict[Any, int] = {}
            for key_node, _ in node.value:
                if key_node.tag == MERGE_TAG or not isinstance(key_node, ScalarNode):
                    continue
                key = self.construct_object(key_node, deep=True)
                try:
                    first = seen.setdefault(key, key_node.start_mark.line + 1)
                except TypeError:
                    continue  # unhashable: SafeLoader reports it
                if first != key_node.start_mark.line + 1:
                    raise ConstructorError(
                        "while reading a mapping", node.start_mark,
                        f"duplicate key '{key}' (first on line {first}): a second one would "
                        "silently replace the first; merge them into one",
                        key_node.start_mark,
                    )
        return super().construct_mapping(node, deep=deep)


def _check_expansion(root: Node) -> None:
    """Count the nodes the document expands to, each alias counted as often as it is used."""
    sizes: dict[int, int] = {}

    def size(node: Node) -> int:
        key = id(node)
        if key in sizes:
            return sizes[key]
        # A node that refers to itself (through an alias) would expand forever.
        sizes[key] = MAX_EXPANDED_NODES + 1
        total = 1
        if isinstance(node, SequenceNode):
            for child in node.value:
                total += size(child)
                if total > MAX_EXPANDED_NODES:
                    break
        elif isinstance(node, MappingNode):
            for key_node, value_node in node.value:
                total += size(key_node) + size(value_node)
                if total > MAX_EXPANDED_NODES:
                    break
        sizes[key] = total
        return total

    if size(root) > MAX_EXPANDED_NODES:
        raise ConstructorError(
            None, None,
            f"its anchors and aliases expand to more than {MAX_EXPANDED_NODES} values (or refer "
            "to themselves): write the values out, or use fewer nested aliases",
            root.start_mark,
        )


def load(text: str | bytes) -> Any:
    """Parse one YAML document strictly. Raises yaml.YAMLError (with a mark) on any problem."""
    try:
        return yaml.load(text, Loader=StrictLoader)  # StrictLoader is a SafeLoader
    except RecursionError:
        raise yaml.YAMLError("it is nested too deeply to read: flatten the structure") from None


def describe(exc: yaml.YAMLError) -> tuple[str, str]:
    """(where, what) of a YAML error, for a Problem."""
    mark = getattr(exc, "problem_mark", None)
    where = f"line {mark.line + 1}, column {mark.column + 1}" if mark else ""
    reason = getattr(exc, "problem", None) or str(exc)
    return where, str(reason)
