"""Reading Kubernetes object dicts field by field, against a declared registry of field paths.

Every parser reads through a :class:`Node`; every read names its field, and that field's schema
path (``spec.rollout.steps[].bake``) must be listed in the :class:`FieldRegistry` the parser
declared. A unit test checks every registered path against the CRD schemas, so the code cannot
read or write a field the API server would drop (no silent drift). Type errors become
:class:`~modelfleet.errors.ConfigError` naming the object and the field (``spec.rollout.steps[2]
.percent``). Pure: no I/O.
"""

from __future__ import annotations

from collections.abc import Iterable, Mapping
from datetime import datetime
from typing import Any

from modelfleet.core.times import parse_time
from modelfleet.errors import ConfigError, ModelfleetError


class SchemaDriftError(ModelfleetError):
    """Code touched a field path that its registry does not declare (a programming error)."""


class FieldRegistry:
    """A named, declared set of schema paths (``a.b[].c``) that one kind of object uses."""

    __slots__ = ("name", "paths")

    def __init__(self, name: str, paths: Iterable[str]) -> None:
        self.name = name
        self.paths = frozenset(paths)

    def check(self, path: str) -> None:
        """Raise :class:`SchemaDriftError` unless ``path`` is declared."""
        if path not in self.paths:
            raise SchemaDriftError(f"{self.name}: field path {path!r} is not declared")


class Node:
    """A mapping inside a Kubernetes object, with its location for messages and checks."""

    __slots__ = ("_data", "_path", "_registry", "_schema", "_where")

    def __init__(
        self,
        data: Mapping[str, Any],
        *,
        registry: FieldRegistry,
        where: str,
        path: str = "",
        schema: str = "",
    ) -> None:
        self._data = data
        self._registry = registry
        self._where = where
        self._path = path
        self._schema = schema

    @property
    def path(self) -> str:
        """Where this node is (``spec.rollout.steps[1]``)."""
        return self._path

    def error(self, key: str, problem: str) -> ConfigError:
        """A :class:`ConfigError` about field ``key`` of this node."""
        return ConfigError(f"{self._where}: {self._join(self._path, key)}: {problem}")

    @staticmethod
    def _join(base: str, key: str) -> str:
        return f"{base}.{key}" if base else key

    def has(self, key: str) -> bool:
        """Whether ``key`` is present and not null."""
        self._registry.check(self._join(self._schema, key))
        return self._data.get(key) is not None

    def raw(self, key: str, *, required: bool = False) -> Any:
        """The value of ``key`` (``None`` when absent), registered and presence-checked."""
        self._registry.check(self._join(self._schema, key))
        value = self._data.get(key)
        if value is None and required:
            raise self.error(key, "is required")
        return value

    def string(self, key: str, *, required: bool = False) -> str | None:
        """A string field."""
        value = self.raw(key, required=required)
        if value is None or isinstance(value, str):
            if required and value == "":
                raise self.error(key, "must not be empty")
            return value
        raise self.error(key, f"expected a string, got {value!r}")

    def required_string(self, key: str) -> str:
        """A required, non-empty string field."""
        value = self.string(key, required=True)
        assert value is not None
        return value

    def integer(self, key: str, *, minimum: int | None = None) -> int | None:
        """An integer field (``bool`` is refused; integral floats are accepted)."""
        value = self.raw(key)
        if value is None:
            return None
        if isinstance(value, float) and value.is_integer():
            value = int(value)
        if isinstance(value, bool) or not isinstance(value, int):
            raise self.error(key, f"expected an integer, got {value!r}")
        if minimum is not None and value < minimum:
            raise self.error(key, f"must be at least {minimum}, got {value}")
        return value

    def number(
        self, key: str, *, minimum: float | None = None, maximum: float | None = None
    ) -> float | None:
        """A number field, optionally bounded."""
        value = self.raw(key)
        if value is None:
            return None
        if isinstance(value, bool) or not isinstance(value, int | float):
            raise self.error(key, f"expected a number, got {value!r}")
        if (minimum is not None and value < minimum) or (maximum is not None and value > maximum):
            raise self.error(key, f"must be between {minimum} and {maximum}, got {value}")
        return float(value)

    def boolean(self, key: str, *, default: bool = False) -> bool:
        """A boolean field."""
        value = self.raw(key)
        if value is None:
            return default
        if not isinstance(value, bool):
            raise self.error(key, f"expected true or false, got {value!r}")
        return value

    def timestamp(self, key: str) -> datetime | None:
        """An RFC 3339 timestamp field."""
        value = self.string(key)
        if value is None or value == "":
            return None
        return parse_time(value, field=f"{self._where}: {self._join(self._path, key)}")

    def node(self, key: str, *, required: bool = False) -> Node | None:
        """A nested object field."""
        value = self.raw(key, required=required)
        if value is None:
            return None
        if not isinstance(value, Mapping):
            raise self.error(key, f"expected an object, got {value!r}")
        return Node(
            value,
            registry=self._registry,
            where=self._where,
            path=self._join(self._path, key),
            schema=self._join(self._schema, key),
        )

    def nodes(self, key: str) -> list[Node]:
        """An array-of-objects field (empty when absent)."""
        value = self.raw(key)
        if value is None:
            return []
        if not isinstance(value, list):
            raise self.error(key, f"expected a list, got {value!r}")
        out: list[Node] = []
        for index, item in enumerate(value):
            if not isinstance(item, Mapping):
                raise self.error(f"{key}[{index}]", f"expected an object, got {item!r}")
            out.append(
                Node(
                    item,
                    registry=self._registry,
                    where=self._where,
                    path=self._join(self._path, f"{key}[{index}]"),
                    schema=self._join(self._schema, f"{key}[]"),
                )
            )
        return out

    def strings(self, key: str) -> tuple[str, ...]:
        """An array-of-strings field (empty when absent)."""
        value = self.raw(key)
        if value is None:
            return ()
        if not isinstance(value, list) or not all(isinstance(v, str) for v in value):
            raise self.error(key, f"expected a list of strings, got {value!r}")
        return tuple(value)

    def string_map(self, key: str) -> dict[str, str]:
        """A string-to-string map field (``matchLabels``, labels); empty when absent."""
        value = self.raw(key)
        if value is None:
            return {}
        if not isinstance(value, Mapping) or not all(
            isinstance(k, str) and isinstance(v, str) for k, v in value.items()
        ):
            raise self.error(key, f"expected a map of strings to strings, got {value!r}")
        return dict(value)
