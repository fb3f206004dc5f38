"""modelfleet.trust: signature and provenance verification; the only importer of sigstore.

It is also the only importer of model_signing.

Nothing reaches a gateway unless it was verified here against a TrustPolicy. The operator calls
:func:`verify_artifact` before a rollout, the agent calls it again before activation, the CLI calls
:func:`verify_model`. Only a :class:`VerifiedArtifact` (which only this package can make) proves a
pass; every failure is a :class:`VerificationError` whose ``check`` names what failed (see
:data:`CHECKS`) and whose message is one line.

Public API::

    # policies (TrustPolicy resource or YAML file; a full manifest or a bare spec)
    policy = load_policy(Path("trust.yaml"))                       # agent, CLI
    policy = parse_policy(body, resolver=my_resolver)  # operator; the resolver reads
                                                       # Secrets / ConfigMaps
    # verification
    verified = verify_artifact(policy, Path("model.tar"), expected_digest="sha256:…",
                               signature=Path("model.sig"), attestations=[Path("prov.json")],
                               ignore_paths=(), now=None, unpack_to=None)
    verified = verify_model(policy, Path("model-dir"), signature=Path("model.sig"))
    verified.to_status()      # -> ModelRelease status.verification (camelCase dict)
    digest_file(path)         # -> "sha256:<hex>", streamed, constant memory

    # signing (offline; tests of every component use these with a generated EC key)
    key = ec.generate_private_key(ec.SECP256R1())
    sign_model(Path("model-dir-or-file"), Path("model.sig"), private_key=key)
    sign_model(..., private_key=key, certificate_chain=[leaf, intermediate])
    pack_model(Path("model-dir"), Path("model.tar"))  # reproducible tar -> "sha256:<hex>"
    combine_signatures([Path("a.sig"), Path("b.sig")], Path("model.sig"))  # a signature set

    # in tests (tests/trustkit): a key-signed artifact + policy file in one call
    artifact, signature, policy_path, digest = make_signed_model(tmp_path, archive=True)
    # also tests.trustkit.pki.make_pki() and tests.trustkit.sigstore.PrivateSigstore()

The artifact at a release's ``uri`` is one model file or a .tar / .tar.gz / .tgz that unpacks into
the model folder; its signature is a model-signing signature over the model's files (key,
certificate or Sigstore keyless) or a plain Sigstore bundle over the artifact bytes (a message
signature, key-signed or keyless). Any other signed statement, such as SLSA provenance, is an
attestation and is refused as the signature (check ``signature-type``).

Who must have signed: the policy's authorities are composed like sigstore-python's verification
policies (:mod:`modelfleet.trust.authorities`): ``AnyOf`` (``spec.require: any``, the default)
or ``AllOf`` (``spec.require: all``, one signature per authority, combined into a signature set
by :func:`combine_signatures`). Each signature that verified is a :class:`Signer`
(``VerifiedArtifact.signers``).
"""

from __future__ import annotations

from modelfleet.trust.archive import ArchiveLimits
from modelfleet.trust.digest import digest_file
from modelfleet.trust.errors import CHECKS, VerificationError
from modelfleet.trust.policy import (
    SLSA_PROVENANCE_V1,
    AttestationRule,
    Authority,
    Hashing,
    MaterialResolver,
    Policy,
    load_policy,
    parse_policy,
)
from modelfleet.trust.provenance import Provenance
from modelfleet.trust.signer import Signer
from modelfleet.trust.signing import combine_signatures, pack_model, sign_model
from modelfleet.trust.verified import VerifiedArtifact
from modelfleet.trust.verify import check_request, verify_artifact, verify_model

__all__ = [
    "CHECKS",
    "SLSA_PROVENANCE_V1",
    "ArchiveLimits",
    "AttestationRule",
    "Authority",
    "Hashing",
    "MaterialResolver",
    "Policy",
    "Provenance",
    "Signer",
    "VerificationError",
    "VerifiedArtifact",
    "check_request",
    "combine_signatures",
    "digest_file",
    "load_policy",
    "pack_model",
    "parse_policy",
    "sign_model",
    "verify_artifact",
    "verify_model",
]
