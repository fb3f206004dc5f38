"""A process that installs versions in a loop, to be SIGKILLed at random instants by
test_kill.py: ``python -m tests.unit.agent.killtarget DATA POLICY DESIRED.json``."""

from __future__ import annotations

import asyncio
import json
import sys
from pathlib import Path

from modelfleet.agent.protocol import DesiredModel
from modelfleet.agent.verifyworker import _warm_up

from .helpers import ScriptedCheck, make_installer


async def main(data: Path, policy: Path, desired_file: Path) -> None:
    models = [DesiredModel(**d) for d in json.loads(desired_file.read_text())]
    check = ScriptedCheck(failing={m.version: "unhealthy" for m in models[2::3]})
    _warm_up()  # load the signature libraries now, so kills land in the install loop
    print("started", flush=True)
    i = 0
    while True:
        inst = make_installer(data, policy, check)  # a fresh start each round, like a restart
        await inst.reconcile(models[i % len(models)])
        i += 1
        print(f"round {i}", flush=True)


if __name__ == "__main__":
    asyncio.run(main(Path(sys.argv[1]), Path(sys.argv[2]), Path(sys.argv[3])))
