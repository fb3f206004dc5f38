"""The whole modelfleet loop as real processes, for ``modelfleet demo``, the e2e tests and the
benchmarks.

* :mod:`modelfleet.demo.stack`: start and stop the control plane, ``modelfleet operator``,
  ``modelfleet fleet-api``, ``modelfleet sync`` and ``modelfleet simulate`` as subprocesses
  (:mod:`~modelfleet.demo.process`: one child process; :mod:`~modelfleet.demo.settings`: flags);
* :mod:`modelfleet.demo.gitrepo`: a local GitOps repository (bare repo + working clone) driven
  through ``modelfleet release`` / ``modelfleet rollback``;
* :mod:`modelfleet.demo.models`: small real model artifacts, key-signed, served as ``file://``;
* :mod:`modelfleet.demo.watch`: what the cluster says about a release and its gateways;
* :mod:`modelfleet.demo.progress`: live per-cohort progress for a person watching;
* :mod:`modelfleet.demo.cluster`: housekeeping on clusters the demo did not start;
* :mod:`modelfleet.demo.scenario`: the four-act story the demo tells.
"""
