"""``modelfleet verify`` and ``modelfleet verify-bundle``: check a model or an artifact, offline.

``verify`` checks a model (folder or file) or a release artifact (``--digest`` with a file or
tar archive) against a TrustPolicy file. ``verify-bundle`` follows the Sigstore client
conformance protocol, so the upstream harness can drive it. Both exit 0 only when verified; a
rejection prints one line ``modelfleet <cmd>: <check>: <reason>`` and exits 1.
"""

from __future__ import annotations

import argparse
import json
import sys
from collections.abc import Callable
from functools import partial
from pathlib import Path

from modelfleet.cli import flags
from modelfleet.trust import VerifiedArtifact, load_policy, verify_artifact, verify_model
from modelfleet.trust.policy import (
    Authority,
    KeyAuthority,
    KeylessAuthority,
    KeylessIdentity,
    Policy,
)

VERIFY_SUMMARY = "verify a model or artifact against a TrustPolicy file (offline)"
VERIFY_DESCRIPTION = (
    "Verify a model's signature, signer, provenance and revocation against a TrustPolicy file, "
    "without a cluster and without the network."
)
BUNDLE_SUMMARY = "verify one Sigstore bundle over an artifact (conformance protocol)"
BUNDLE_DESCRIPTION = (
    "Verify a Sigstore bundle (message signature or DSSE) over ARTIFACT, keyless or with a "
    "managed key, offline."
)
VERIFY_EPILOG = """\
The policy file is a TrustPolicy (the same YAML as the cluster resource, or just its spec).
Relative key/CA/trust-root 'file:' paths are resolved from the policy file's folder.

MODEL is a model folder or a single model file; with --digest it is a release artifact
(a model file or a .tar/.tar.gz/.tgz of the model folder) whose SHA-256 must equal DIGEST.
SIG is an OpenSSF model-signing signature over the model's files, or a Sigstore bundle over the
file's bytes. A signature file inside the model folder is ignored automatically.

examples:
  modelfleet verify --policy trust.yaml --signature model.sig ./resnet
  modelfleet verify --policy trust.yaml --signature model.sig --ignore README.md ./resnet
  modelfleet verify --policy trust.yaml --signature model.sig \\
      --attestation provenance.json --digest sha256:3f1c... model.tar

exit status: 0 verified; 1 rejected (one line naming the failed check); 2 usage error.
"""

BUNDLE_EPILOG = """\
Follows the sigstore-conformance client protocol. Without --trusted-root the Sigstore
public-good trust root embedded in this installation is used, offline. With --key the bundle
must be signed by that key (a "managed key" bundle) and carry a verified transparency-log entry;
otherwise its Fulcio certificate must name IDENTITY, issued by ISSUER (exact matches).

exit status: 0 verified; 1 rejected (one line on stderr naming the failed check).
"""


def register(sub: flags.Subparsers) -> None:
    p = flags.command(sub, "verify", VERIFY_SUMMARY, VERIFY_DESCRIPTION, VERIFY_EPILOG)
    p.add_argument("--policy", required=True, type=Path, metavar="FILE", help="TrustPolicy YAML")
    p.add_argument("--signature", required=True, type=Path, metavar="SIG", help="signature file")
    flags.paths(
        p, "--attestation", "A", "DSSE provenance attestation (bundle or envelope); repeatable"
    )
    flags.words(
        p, "--ignore", "PATH", "model-relative path left out of the check (and everything under "
        "it); repeatable",
    )  # fmt: skip
    p.add_argument("--digest", metavar="DIGEST", help="MODEL is an artifact with this sha256:<hex>")
    flags.json_output(p, "print the verification result as JSON")
    p.add_argument("model", type=Path, metavar="MODEL", help="model folder, model file or artifact")
    p.set_defaults(func=run_verify)

    b = flags.command(sub, "verify-bundle", BUNDLE_SUMMARY, BUNDLE_DESCRIPTION, BUNDLE_EPILOG)
    b.add_argument("--bundle", required=True, type=Path, metavar="B", help="the bundle to verify")
    b.add_argument("--trusted-root", type=Path, metavar="T", help="trusted_root.json to use")
    b.add_argument("--certificate-identity", metavar="I", help="required certificate identity")
    b.add_argument("--certificate-oidc-issuer", metavar="S", help="required OIDC issuer")
    b.add_argument("--key", type=Path, metavar="K", help="PEM public key of a managed-key bundle")
    b.add_argument("artifact", type=Path, metavar="ARTIFACT", help="the signed artifact")
    b.set_defaults(func=run_verify_bundle)


def run_verify(args: argparse.Namespace) -> int:
    policy = load_policy(args.policy)
    check: Callable[..., VerifiedArtifact] = (
        partial(verify_artifact, expected_digest=args.digest) if args.digest else verify_model
    )
    result = check(
        policy,
        args.model,
        signature=args.signature,
        attestations=args.attestation,
        ignore_paths=args.ignore,
    )
    if args.json:
        print(json.dumps(result.to_status(), indent=2))
    else:
        who = result.signer + (f" ({result.issuer})" if result.issuer else "")
        print(f"verified {result.digest}: signed by {who} via authority {result.authority!r}")
    return 0


def _bundle_policy(args: argparse.Namespace) -> Policy:
    from modelfleet.errors import ConfigError

    root = None
    if args.trusted_root is not None:
        root = flags.read_bytes(args.trusted_root, "trusted root")
    if args.key is not None:
        pem = flags.read_bytes(args.key, "key")
        key = KeyAuthority(pem, require_transparency_log=True, trusted_root_json=root)
        return Policy(name="command-line", authorities=(Authority("key", key=key),))
    if not (args.certificate_identity and args.certificate_oidc_issuer):
        raise ConfigError(
            "give --key, or both --certificate-identity and --certificate-oidc-issuer"
        )
    ident = KeylessIdentity(issuer=args.certificate_oidc_issuer, subject=args.certificate_identity)
    keyless = KeylessAuthority((ident,), trusted_root_json=root)
    return Policy(name="command-line", authorities=(Authority("keyless", keyless=keyless),))


def run_verify_bundle(args: argparse.Namespace) -> int:
    result = verify_model(
        _bundle_policy(args), args.artifact, signature=args.bundle, accept_statements=True
    )
    print(f"verified {result.digest}: signed by {result.signer}", file=sys.stderr)
    return 0
