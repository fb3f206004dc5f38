"""Print the requirements of some extras of pyproject.toml, one per line, for `pip install -r`.

    python3 hack/requirements.py pyproject.toml operator fleet

The base dependencies come first, then each named extra's; an extra naming ``modelfleet[...]``
(such as ``all``) is expanded. The image build uses this to install the dependencies in a layer
that depends on pyproject.toml alone, so changing the code does not download them again.
Standard library only (tomllib): it runs in the bare base image.
"""

from __future__ import annotations

import re
import sys
import tomllib
from pathlib import Path

SELF = re.compile(r"^\s*modelfleet\s*\[([^\]]*)\]\s*$")


def requirements(pyproject: Path, extras: list[str]) -> list[str]:
    project = tomllib.loads(pyproject.read_text())["project"]
    optional: dict[str, list[str]] = project.get("optional-dependencies", {})
    out: list[str] = list(project.get("dependencies", []))
    seen: set[str] = set()
    todo = list(extras)
    while todo:
        extra = todo.pop(0)
        if extra in seen:
            continue
        if extra not in optional:
            raise SystemExit(f"requirements: no extra {extra!r} in {pyproject}")
        seen.add(extra)
        for req in optional[extra]:
            nested = SELF.match(req)
            if nested:
                todo.extend(e.strip() for e in nested.group(1).split(",") if e.strip())
            elif req not in out:
                out.append(req)
    return out


if __name__ == "__main__":
    if len(sys.argv) < 2:
        raise SystemExit(__doc__)
    print("\n".join(requirements(Path(sys.argv[1]), sys.argv[2:])))
