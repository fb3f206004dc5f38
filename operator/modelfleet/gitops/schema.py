"""Client-side validation of manifests against the CRD schemas shipped with the package.

Before ``modelfleet release`` commits a ModelRelease, it checks the manifest the way the API server
will: the structural OpenAPI schema (types, required fields, enums, patterns, bounds) with
``jsonschema``, unknown fields (the API server's strict field validation), and the intent of every
CEL rule in ``x-kubernetes-validations``. CEL itself is not evaluated; each rule of the CRD has a
Python equivalent here, looked up by the rule's exact text. A rule without an equivalent is
reported in :attr:`ValidationReport.unevaluated` (the unit tests require that list to be empty
for the shipped CRDs, so a new rule cannot slip in unchecked). Messages reuse the CRD's own.
"""

from __future__ import annotations

import functools
import itertools
import re
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass
from importlib import resources
from typing import Any

import jsonschema
import yaml

from modelfleet.gitops.errors import ManifestInvalid

GROUP = "modelfleet.dev"
VERSION = "v1alpha1"
API_VERSION = f"{GROUP}/{VERSION}"

#: CRD file (in the package's ``crds`` folder) of each kind.
CRD_FILES: dict[str, str] = {
    "ModelRelease": "modelrelease.yaml",
    "TrustPolicy": "trustpolicy.yaml",
    "EdgeGateway": "edgegateway.yaml",
}

_DNS_SUBDOMAIN = re.compile(r"^[a-z0-9]([-a-z0-9]*[a-z0-9])?(\.[a-z0-9]([-a-z0-9]*[a-z0-9])?)*$")
_DNS_LABEL = re.compile(r"^[a-z0-9]([-a-z0-9]*[a-z0-9])?$")

Rule = Callable[[Any], bool]


def _has(obj: Any, key: str) -> bool:
    return isinstance(obj, Mapping) and key in obj and obj[key] is not None


def _percents(steps: Sequence[Any]) -> list[Any]:
    return [s["percent"] for s in steps if _has(s, "percent")]


def _steps_percents_increase(steps: Any) -> bool:
    values = _percents(steps)
    return all(a < b for a, b in itertools.pairwise(values))


def _last_step_full(steps: Any) -> bool:
    return bool(steps) and _has(steps[-1], "percent") and steps[-1]["percent"] == 100


def _names_unique(steps: Any) -> bool:
    names = [s.get("name") for s in steps if isinstance(s, Mapping)]
    return len(names) == len(set(names))


def _one_of_percent_selector(step: Any) -> bool:
    return _has(step, "percent") != _has(step, "selector")


def _match_expression_values(expr: Any) -> bool:
    values = expr.get("values") if isinstance(expr, Mapping) else None
    return (expr.get("operator") in ("In", "NotIn")) == bool(values)


def _public_good_or_one_root(obj: Any) -> bool:
    chosen = [bool(_has(obj, "publicGood") and obj["publicGood"])]
    chosen += [_has(obj, k) for k in ("data", "configMapRef", "file")]
    return sum(chosen) <= 1


#: Python equivalents of CEL rules whose text is not one of the generic shapes below.
SPECIFIC_RULES: dict[str, Rule] = {
    "has(self.percent) != has(self.selector)": _one_of_percent_selector,
    "self.filter(s, has(s.percent)).map(s, s.percent).isSorted() && "
    "self.filter(s, has(s.percent)).all(a, self.filter(b, has(b.percent) && "
    "b.percent == a.percent).size() == 1)": _steps_percents_increase,
    "size(self) == 0 || (has(self[size(self) - 1].percent) && "
    "self[size(self) - 1].percent == 100)": lambda v: not v or _last_step_full(v),
    "self.all(a, self.filter(b, b.name == a.name).size() == 1)": _names_unique,
    "(self.operator in ['In', 'NotIn']) == (has(self.values) && size(self.values) > 0)": (
        _match_expression_values
    ),
    "!has(self.max) || !has(self.min) || self.min <= self.max": lambda v: (
        not (_has(v, "max") and _has(v, "min")) or v["min"] <= v["max"]
    ),
    "size(self) >= 1": lambda v: len(v) >= 1,
    "size(self) > 0": lambda v: len(v) > 0,
    "self in ['any', 'all']": lambda v: v in ("any", "all"),  # TrustPolicy spec.require
    "self.trim().size() > 0": lambda v: bool(v.strip()),  # ModelRelease spec.owner fields
    "[has(self.publicGood) && self.publicGood, has(self.data), has(self.configMapRef), "
    "has(self.file)].filter(x, x).size() <= 1": _public_good_or_one_root,
}

_MATCHES = re.compile(r"^self\.matches\('(?P<re>[^']*)'\)$")
_RANGE = re.compile(r"^self >= (?P<lo>[-0-9.]+) && self <= (?P<hi>[-0-9.]+)$")
_STARTS = re.compile(r"self\.startsWith\('(?P<p>[^']*)'\)")
_HAS = r"has\(self\.(\w+)\)"
_COUNT = re.compile(r"^\[(?P<fields>[^\]]*)\]\.filter\(x, x\)\.size\(\) (?P<op>==|<=) 1$")
_XOR = re.compile(rf"^{_HAS} != {_HAS}$")
_ANY = re.compile(rf"^{_HAS}( \|\| {_HAS})*$")
_NAND = re.compile(rf"^!\({_HAS} && {_HAS}\)$")


def _field_rule(text: str) -> Rule | None:
    """Presence rules over sibling fields: exactly/at most one of, xor, any of, not both."""
    if m := _COUNT.match(text):
        fields = [f.strip() for f in m["fields"].split(",")]
        names = [re.fullmatch(_HAS, f) for f in fields]
        if all(names):
            keys = [n[1] for n in names if n]
            limit_ok: Callable[[int], bool] = (
                (lambda n: n == 1) if m["op"] == "==" else (lambda n: n <= 1)
            )
            return lambda v: limit_ok(sum(_has(v, k) for k in keys))
    if m := _XOR.match(text):
        a, b = m[1], m[2]
        return lambda v: _has(v, a) != _has(v, b)
    if _ANY.match(text):
        keys = re.findall(_HAS, text)
        return lambda v: any(_has(v, k) for k in keys)
    if m := _NAND.match(text):
        a, b = m[1], m[2]
        return lambda v: not (_has(v, a) and _has(v, b))
    return None


def rule_function(rule: str) -> Rule | None:
    """The Python equivalent of one CEL rule, or ``None`` when it is not known."""
    text = " ".join(rule.split())
    if text in SPECIFIC_RULES:
        return SPECIFIC_RULES[text]
    if m := _MATCHES.match(text):
        pattern = re.compile(m["re"])  # CEL matches() is an unanchored RE2 search
        return lambda v: isinstance(v, str) and pattern.search(v) is not None
    if m := _RANGE.match(text):
        lo, hi = float(m["lo"]), float(m["hi"])
        return lambda v: isinstance(v, int | float) and lo <= v <= hi
    if fn := _field_rule(text):
        return fn
    prefixes = _STARTS.findall(text)
    if prefixes and " || ".join(f"self.startsWith('{p}')" for p in prefixes) == text:
        return lambda v: isinstance(v, str) and v.startswith(tuple(prefixes))
    return None


@dataclass(frozen=True)
class ValidationReport:
    """What :meth:`CrdSchema.check` found: ``problems`` reject, ``unevaluated`` are CEL rules
    this validator does not know (the API server still enforces them)."""

    problems: tuple[str, ...]
    unevaluated: tuple[str, ...]

    @property
    def ok(self) -> bool:
        return not self.problems


def _path(parts: Sequence[str | int]) -> str:
    out = ""
    for p in parts:
        out += f"[{p}]" if isinstance(p, int) else (f".{p}" if out else p)
    return out or "(root)"


class CrdSchema:
    """The ``openAPIV3Schema`` of one CRD version, with a strict validator for manifests."""

    def __init__(self, kind: str, schema: Mapping[str, Any], *, namespaced: bool) -> None:
        self.kind = kind
        self.schema = schema
        self.namespaced = namespaced
        self._validator = jsonschema.Draft4Validator(dict(schema))

    @classmethod
    def from_crd(cls, crd: Mapping[str, Any], version: str = VERSION) -> CrdSchema:
        spec = crd["spec"]
        for v in spec["versions"]:
            if v["name"] == version:
                return cls(
                    spec["names"]["kind"],
                    v["schema"]["openAPIV3Schema"],
                    namespaced=spec.get("scope", "Namespaced") == "Namespaced",
                )
        raise KeyError(f"{crd['metadata']['name']} has no version {version}")

    def check(self, manifest: Any) -> ValidationReport:
        """Validate one manifest (a dict as loaded from YAML); never raises on bad input."""
        problems: list[str] = []
        unevaluated: list[str] = []
        if not isinstance(manifest, Mapping):
            return ValidationReport(("the document is not a mapping",), ())
        if manifest.get("apiVersion") != API_VERSION:
            problems.append(f"apiVersion must be {API_VERSION}, not {manifest.get('apiVersion')!r}")
        if manifest.get("kind") != self.kind:
            problems.append(f"kind must be {self.kind}, not {manifest.get('kind')!r}")
        problems += self._check_metadata(manifest.get("metadata"))
        for error in sorted(self._validator.iter_errors(manifest), key=lambda e: list(e.path)):
            problems.append(f"{_path(list(error.absolute_path))}: {error.message}")
        self._walk(self.schema, manifest, [], problems, unevaluated)
        return ValidationReport(tuple(problems), tuple(dict.fromkeys(unevaluated)))

    def require_valid(self, manifest: Any, where: str) -> None:
        """Raise :class:`ManifestInvalid` listing every problem of ``manifest``."""
        report = self.check(manifest)
        if report.problems:
            raise ManifestInvalid(where, report.problems)

    def _check_metadata(self, metadata: Any) -> list[str]:
        if not isinstance(metadata, Mapping):
            return ["metadata is required"]
        problems = []
        name = metadata.get("name")
        if not isinstance(name, str) or len(name) > 253 or not _DNS_SUBDOMAIN.match(name):
            problems.append(f"metadata.name {name!r} must be a DNS subdomain (RFC 1123)")
        ns = metadata.get("namespace")
        if ns is not None and not self.namespaced:
            problems.append(f"{self.kind} is cluster-scoped: metadata.namespace must be omitted")
        if ns is not None and (not isinstance(ns, str) or not _DNS_LABEL.match(ns)):
            problems.append(f"metadata.namespace {ns!r} must be a DNS label")
        return problems

    # Complexity waiver: one branch per OpenAPI schema keyword the client-side check supports.
    def _walk(  # noqa: PLR0912
        self,
        schema: Mapping[str, Any],
        value: Any,
        path: list[str | int],
        problems: list[str],
        unevaluated: list[str],
    ) -> None:
        if value is None:
            return
        for rule in schema.get("x-kubernetes-validations", ()):
            fn = rule_function(rule["rule"])
            if fn is None:
                unevaluated.append(rule["rule"])
                continue
            try:
                ok = fn(value)
            except (TypeError, KeyError, IndexError, AttributeError):
                ok = False  # the structural check reports the type problem itself
            if not ok:
                problems.append(f"{_path(path)}: {rule.get('message') or rule['rule']}")
        props = schema.get("properties")
        if isinstance(value, Mapping) and props is not None:
            known = set(props)
            strict = not schema.get("x-kubernetes-preserve-unknown-fields") and (
                "additionalProperties" not in schema
            )
            for key, item in value.items():
                if key in props:
                    self._walk(props[key], item, [*path, key], problems, unevaluated)
                elif strict and key not in known:
                    problems.append(f"{_path([*path, key])}: unknown field")
        extra = schema.get("additionalProperties")
        if isinstance(value, Mapping) and isinstance(extra, Mapping):
            for key, item in value.items():
                if props is None or key not in props:
                    self._walk(extra, item, [*path, key], problems, unevaluated)
        items = schema.get("items")
        if isinstance(value, list) and isinstance(items, Mapping):
            for i, item in enumerate(value):
                self._walk(items, item, [*path, i], problems, unevaluated)


def all_rules(schema: Mapping[str, Any]) -> list[str]:
    """Every CEL rule text in a schema (for the coverage test)."""
    found: list[str] = []

    def visit(node: Any) -> None:
        if isinstance(node, Mapping):
            found.extend(r["rule"] for r in node.get("x-kubernetes-validations", ()))
            for v in node.values():
                visit(v)
        elif isinstance(node, list):
            for v in node:
                visit(v)

    visit(schema)
    return found


@functools.cache
def crd_schema(kind: str) -> CrdSchema:
    """The schema of ``kind`` from the CRDs packaged under ``modelfleet/crds``."""
    text = resources.files("modelfleet").joinpath("crds", CRD_FILES[kind]).read_text("utf-8")
    return CrdSchema.from_crd(yaml.safe_load(text))
