"""Benchmark of modelfleet.trust verification: ``python bench/verify.py [--size-mib N]``.

On a generated single-file model and a 4-file model of the same total size (default 1 GiB), in
one run it compares:

(a) our streamed digest (``digest_file``) with ``openssl dgst -sha256`` on the same file
    (goal: at least 0.9x its throughput);
(b) our full verification with model_signing's own ``verify`` using the same key and hashing
    config (goal: at most 1.1x its time), for the single file, the folder, and — for the record —
    the 4-file model as a tar artifact (digest, then every member checked and hashed against the
    signed manifest in one read; nothing is written);
(c) the peak RSS of each run (goal: under 150 MB: everything is streamed).

Each measurement runs in a fresh child process (so peak RSS is its own), after one warm-up read
so that every contender reads from the page cache; the best of ``--repeat`` runs is reported.
"""

from __future__ import annotations

import argparse
import json
import os
import resource
import subprocess
import sys
import tempfile
import time
from pathlib import Path

HERE = Path(__file__).resolve()
GOALS = {"digest": 0.9, "verify": 1.1, "rss_mb": 150.0}


def _child(op: str, args: list[str]) -> None:
    """Runs one operation and prints ``{"seconds", "rss_mb"}`` as JSON."""
    import logging

    logging.disable(logging.WARNING)
    # Imports (ours load model_signing and sigstore lazily, on first use) are one-time costs of a
    # process, not of a verification: done for both contenders before the clock starts.
    import model_signing
    import model_signing._signing.signing
    import OpenSSL.crypto
    import sigstore.verify

    from modelfleet.trust import digest_file, load_policy, verify_artifact, verify_model

    del OpenSSL, sigstore

    cpu0 = _cpu(resource.RUSAGE_SELF)
    start = time.perf_counter()  # imports are not part of the measurement
    if op == "ours-digest":
        digest_file(Path(args[0]))
    elif op == "ours-verify-model":
        verify_model(load_policy(Path(args[0])), Path(args[1]), signature=Path(args[2]))
    elif op == "ours-verify-artifact":
        verify_artifact(
            load_policy(Path(args[0])),
            Path(args[1]),
            expected_digest=args[3],
            signature=Path(args[2]),
        )
    elif op == "model-signing-verify":
        hashing = model_signing.hashing.Config().set_ignored_paths(paths=[], ignore_git_paths=False)
        hashing.use_file_serialization(hashing_algorithm="sha256")
        config = model_signing.verifying.Config().use_elliptic_key_verifier(public_key=args[0])
        config.set_hashing_config(hashing).verify(Path(args[1]), Path(args[2]))
    else:
        raise SystemExit(f"unknown op {op}")
    seconds = time.perf_counter() - start
    cpu = _cpu(resource.RUSAGE_SELF) - cpu0
    rss_mb = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024
    print(json.dumps({"seconds": seconds, "cpu": cpu, "rss_mb": rss_mb}))


def _run(op: str, *args: str) -> dict[str, float]:
    out = subprocess.run(
        [sys.executable, str(HERE), "--child", op, *args],
        check=True,
        capture_output=True,
        text=True,
        env={**os.environ, "PYTHONPATH": str(HERE.parents[1] / "operator")},
    ).stdout
    result: dict[str, float] = json.loads(out.strip().splitlines()[-1])
    return result


def _cpu(who: int) -> float:
    usage = resource.getrusage(who)
    return usage.ru_utime + usage.ru_stime


def _openssl(path: Path) -> dict[str, float]:
    cpu0 = _cpu(resource.RUSAGE_CHILDREN)
    start = time.perf_counter()
    subprocess.run(["openssl", "dgst", "-sha256", str(path)], check=True, capture_output=True)
    seconds = time.perf_counter() - start
    return {"seconds": seconds, "cpu": _cpu(resource.RUSAGE_CHILDREN) - cpu0, "rss_mb": 0.0}


def _summary(runs: list[dict[str, float]]) -> dict[str, float]:
    return {
        "seconds": min(r["seconds"] for r in runs),
        "cpu": min(r["cpu"] for r in runs),
        "rss_mb": max(r["rss_mb"] for r in runs),
    }


def _best(fn, repeat: int) -> dict[str, float]:  # type: ignore[no-untyped-def]
    return _summary([fn() for _ in range(repeat)])


def _pair(a, b, repeat: int) -> tuple[dict[str, float], dict[str, float]]:  # type: ignore[no-untyped-def]
    """Best of ``repeat`` for two contenders run alternately, so both see the same machine load."""
    runs_a, runs_b = [], []
    for _ in range(repeat):
        runs_a.append(a())
        runs_b.append(b())

    return _summary(runs_a), _summary(runs_b)


def _write_random(path: Path, size: int) -> None:
    chunk = os.urandom(8 * 1024 * 1024)
    with open(path, "wb") as f:
        left = size
        while left > 0:
            f.write(chunk[: min(left, len(chunk))])
            left -= len(chunk)


def _warm(path: Path) -> None:
    for p in [path] if path.is_file() else sorted(path.rglob("*")):
        if p.is_file():
            with open(p, "rb", buffering=0) as f:
                while f.read(8 * 1024 * 1024):
                    pass


def main() -> int:
    parser = argparse.ArgumentParser(
        description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    parser.add_argument(
        "--size-mib", type=int, default=1024, help="total model size (default 1024)"
    )
    parser.add_argument("--repeat", type=int, default=3, help="runs per measurement (best is kept)")
    parser.add_argument("--child", nargs=argparse.REMAINDER, help=argparse.SUPPRESS)
    args = parser.parse_args()
    if args.child:
        _child(args.child[0], args.child[1:])
        return 0

    sys.path.insert(0, str(HERE.parents[1] / "operator"))
    from cryptography.hazmat.primitives import serialization
    from cryptography.hazmat.primitives.asymmetric import ec

    from modelfleet.trust import pack_model, sign_model

    size = args.size_mib * 1024 * 1024
    rows: list[tuple[str, str, dict[str, float], str]] = []
    with tempfile.TemporaryDirectory(prefix="modelfleet-bench-") as tmp_name:
        tmp = Path(tmp_name)
        key = ec.generate_private_key(ec.SECP256R1())
        pub = tmp / "key.pub"
        pub.write_bytes(
            key.public_key().public_bytes(
                serialization.Encoding.PEM, serialization.PublicFormat.SubjectPublicKeyInfo
            )
        )
        policy = tmp / "trust.yaml"
        policy.write_text(
            f"spec:\n  authorities:\n    - name: k\n      key:\n        file: {pub}\n"
        )
        single = tmp / "model.bin"
        _write_random(single, size)
        folder = tmp / "model4"
        folder.mkdir()
        for i in range(4):
            _write_random(folder / f"shard-{i}.bin", size // 4)
        sig1, sig4 = tmp / "single.sig", tmp / "folder.sig"
        sign_model(single, sig1, private_key=key)
        sign_model(folder, sig4, private_key=key)
        tar = tmp / "model4.tar"
        tar_digest = pack_model(folder, tar)
        from modelfleet.trust import digest_file

        single_digest = digest_file(single)
        for target in (single, folder, tar):
            _warm(target)

        ossl, ours = _pair(
            lambda: _openssl(single), lambda: _run("ours-digest", str(single)), args.repeat
        )
        mib = size / 1024 / 1024
        wall = ossl["seconds"] / ours["seconds"]
        cpu = ossl["cpu"] / ours["cpu"]
        rows.append(
            ("digest 1 file", "openssl dgst -sha256", ossl, f"{mib / ossl['seconds']:.0f} MiB/s")
        )
        rows.append(
            (
                "digest 1 file",
                "modelfleet digest_file",
                ours,
                f"{mib / ours['seconds']:.0f} MiB/s; throughput {wall:.2f}x openssl "
                f"(per CPU second {cpu:.2f}x; goal >= {GOALS['digest']})",
            )
        )
        cases = [("verify 1 file", single, sig1), ("verify 4 files", folder, sig4)]
        for label, model, sig in cases:
            theirs, mine = _pair(
                lambda m=model, s=sig: _run("model-signing-verify", str(pub), str(m), str(s)),
                lambda m=model, s=sig: _run("ours-verify-model", str(policy), str(m), str(s)),
                args.repeat,
            )
            rows.append((label, "model_signing verify", theirs, ""))
            wall, cpu = mine["seconds"] / theirs["seconds"], mine["cpu"] / theirs["cpu"]
            note = f"time {wall:.2f}x model_signing (CPU {cpu:.2f}x; goal <= {GOALS['verify']})"
            rows.append((label, "modelfleet verify_model", mine, note))
        art1 = _best(
            lambda: _run(
                "ours-verify-artifact", str(policy), str(single), str(sig1), single_digest
            ),
            args.repeat,
        )
        rows.append(
            ("verify 1 file", "modelfleet verify_artifact", art1, "digest + signature, one read")
        )
        art4 = _best(
            lambda: _run("ours-verify-artifact", str(policy), str(tar), str(sig4), tar_digest),
            args.repeat,
        )
        rows.append(
            (
                "verify 4-file tar",
                "modelfleet verify_artifact",
                art4,
                "digest, then members hashed against the manifest, nothing written",
            )
        )

    load = os.getloadavg()[0]
    print(
        f"modelfleet.trust benchmark: {args.size_mib} MiB models, {os.cpu_count()} CPUs, "
        f"best of {args.repeat}, load average {load:.1f}"
    )
    header = f"{'case':<18} {'contender':<27} {'wall s':>7} {'CPU s':>6} {'peak RSS MB':>11}  note"
    print(header)
    print("-" * (len(header) + 50))
    for case, who, m, note in rows:
        rss_text = f"{m['rss_mb']:.0f}" if m["rss_mb"] else "-"
        print(f"{case:<18} {who:<27} {m['seconds']:>7.2f} {m['cpu']:>6.2f} {rss_text:>11}  {note}")
    worst_rss = max(r[2]["rss_mb"] for r in rows)
    print(f"peak RSS of any modelfleet run: {worst_rss:.0f} MB (goal < {GOALS['rss_mb']:.0f} MB)")
    return 0


if __name__ == "__main__":
    sys.exit(main())
