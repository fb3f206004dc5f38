"""``modelfleet sign``: make an OpenSSF model-signing signature over a model folder or file.

Key and certificate modes are offline. Keyless mode signs with Sigstore's public-good instance:
it needs the network and an OIDC identity token (``--identity-token`` or ``$SIGSTORE_ID_TOKEN``).
"""

from __future__ import annotations

import argparse
import os
from pathlib import Path

from cryptography import x509

from modelfleet.cli import flags
from modelfleet.errors import ConfigError
from modelfleet.trust import Hashing, pack_model, sign_model
from modelfleet.trust.signing import load_private_key, sign_model_keyless

SUMMARY = "sign a model folder or file (model-signing format)"
DESCRIPTION = "Sign a model with an OpenSSF model-signing signature."
EPILOG = """\
modes:
  --key KEY                         sign with a PEM private key (EC P-256/P-384/P-521)
  --key KEY --certificate CERT [--chain PEM]...
                                    sign with a key and its X.509 certificate (leaf), plus
                                    intermediates; verifiers need the CA and the identity
  --keyless                         Sigstore keyless (network + OIDC identity token)

Hashing must match the TrustPolicy's pinned spec.hashing (default sha256 / files). Nothing is
ignored implicitly (no .git magic): use --ignore. A signature written inside the model folder is
left out of the manifest automatically. --pack also writes a reproducible tar of the folder and
prints its digest, ready for a ModelRelease's artifact.uri / artifact.digest.

examples:
  modelfleet sign --key release.key --signature model.sig ./resnet
  modelfleet sign --key release.key --signature model.sig --pack model.tar ./resnet
  SIGSTORE_ID_TOKEN=... modelfleet sign --keyless --signature model.sig ./resnet
"""


def register(sub: flags.Subparsers) -> None:
    p = flags.command(sub, "sign", SUMMARY, DESCRIPTION, EPILOG)
    mode = p.add_mutually_exclusive_group(required=True)
    mode.add_argument("--key", type=Path, metavar="KEY", help="PEM private key")
    mode.add_argument("--keyless", action="store_true", help="Sigstore keyless signing")
    p.add_argument(
        "--password-env", metavar="VAR", help="environment variable with the key password"
    )
    p.add_argument("--certificate", type=Path, metavar="CERT", help="signing certificate (PEM)")
    flags.paths(p, "--chain", "PEM", "intermediate certificate(s), PEM; repeatable")
    p.add_argument("--identity-token", metavar="TOKEN", help="OIDC token for --keyless")
    p.add_argument("--signature", required=True, type=Path, metavar="SIG", help="output file")
    p.add_argument("--hashing", choices=["sha256", "blake2"], default="sha256")
    p.add_argument("--serialization", choices=["files", "shards"], default="files")
    p.add_argument("--shard-size", type=int, default=1_000_000_000, metavar="BYTES")
    p.add_argument("--allow-symlinks", action="store_true", help="hash symlinked files")
    flags.words(p, "--ignore", "PATH", "model-relative path to leave out; repeatable")
    p.add_argument("--pack", type=Path, metavar="TAR", help="also pack the folder into TAR")
    p.add_argument("model", type=Path, metavar="MODEL", help="model folder or file")
    p.set_defaults(func=run)


def run(args: argparse.Namespace) -> int:
    if not args.model.exists():
        raise ConfigError(f"model {args.model} does not exist")
    hashing = Hashing(args.hashing, args.serialization, args.shard_size, args.allow_symlinks)
    if args.keyless:
        token = args.identity_token or os.environ.get("SIGSTORE_ID_TOKEN")
        if not token:
            raise ConfigError("--keyless needs --identity-token or $SIGSTORE_ID_TOKEN")
        sign_model_keyless(
            args.model,
            args.signature,
            identity_token=token,
            hashing=hashing,
            ignore_paths=args.ignore,
        )
    else:
        password = os.environ.get(args.password_env, "").encode() if args.password_env else None
        key = load_private_key(flags.read_bytes(args.key, "key"), password or None)
        chain: list[x509.Certificate] = []
        if args.certificate is not None:
            chain.append(
                x509.load_pem_x509_certificate(flags.read_bytes(args.certificate, "certificate"))
            )
            for extra in args.chain:
                chain.extend(x509.load_pem_x509_certificates(flags.read_bytes(extra, "chain")))
        sign_model(
            args.model,
            args.signature,
            private_key=key,
            certificate_chain=chain,
            hashing=hashing,
            ignore_paths=args.ignore,
        )
    print(f"signed {args.model} -> {args.signature}")
    if args.pack is not None:
        if not args.model.is_dir():
            raise ConfigError("--pack needs a model folder")
        exclude = [str(p) for p in args.ignore]
        if args.signature.resolve().is_relative_to(args.model.resolve()):
            exclude.append(args.signature.resolve().relative_to(args.model.resolve()).as_posix())
        print(f"packed {args.pack}: {pack_model(args.model, args.pack, exclude=exclude)}")
    return 0
