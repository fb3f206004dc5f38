"""``python -m modelfleet.agent.verifyworker POLICY``: one verification, then exit.

Started by :class:`~modelfleet.agent.procverifier.ProcessVerifier` while an artifact downloads:
it loads the policy file and what verification needs, then waits (at most ``--idle-timeout``
seconds) for one JSON request line on stdin, runs :meth:`TrustVerifier.verify_sync` on it and
prints one JSON answer line: ``{"ok": true, "digest", "modelPath", "signer", "signatureDigest",
"policyDigest"}`` or ``{"ok": false, "check", "reason", "outOfSpace"}`` (``outOfSpace``: the
failure was a full disk, which the agent retries once space frees).
"""

from __future__ import annotations

import argparse
import json
import select
import sys
from pathlib import Path

from modelfleet.agent.procverifier import decode_request
from modelfleet.agent.trustverifier import TrustVerifier
from modelfleet.errors import ModelfleetError
from modelfleet.fetch import is_out_of_space
from modelfleet.trust.errors import VerificationError
from modelfleet.trust.warmup import warm_up


def _warm_up() -> None:
    """Load what verification would load lazily, before the request arrives."""
    warm_up()


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="modelfleet.agent.verifyworker")
    parser.add_argument("policy", type=Path)
    parser.add_argument("--idle-timeout", type=float, default=600.0)
    args = parser.parse_args(argv)
    try:
        verifier = TrustVerifier(args.policy)
        _warm_up()
        ready, _, _ = select.select([sys.stdin], [], [], args.idle_timeout)
        if not ready:
            return 0
        line = sys.stdin.readline()
        if not line.strip():
            return 0
        request = decode_request(json.loads(line))
        result = verifier.verify_sync(request)
        answer: dict[str, object] = {
            "ok": True,
            "digest": result.digest,
            "modelPath": result.model_path,
            "signer": result.signer,
            "signatureDigest": result.signature_digest,
            "policyDigest": verifier.policy_digest,
        }
    except VerificationError as exc:
        answer = {"ok": False, "check": exc.check, "reason": exc.reason}
        answer["outOfSpace"] = is_out_of_space(exc)
    except ModelfleetError as exc:
        answer = {"ok": False, "check": "internal", "reason": exc.diagnostics()}
        answer["outOfSpace"] = is_out_of_space(exc)
    except Exception as exc:  # fail closed, with the cause in one line
        answer = {"ok": False, "check": "internal", "reason": f"{type(exc).__name__}: {exc}"}
        answer["outOfSpace"] = is_out_of_space(exc)
    print(json.dumps(answer), flush=True)
    return 0


if __name__ == "__main__":
    sys.exit(main())
