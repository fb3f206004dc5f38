"""``modelfleet drill``: failure scenarios run end to end on real processes, each judged in a
readiness report.

* :mod:`~modelfleet.drill.scenarios`: the catalogue (what each scenario injects and expects),
  on the hooks of :mod:`~modelfleet.drill.scenario`;
* :mod:`~modelfleet.drill.fleet`: the shared stack and one lane (release + gateways) per scenario;
* :mod:`~modelfleet.drill.runner`: inject, watch through the API server, judge;
* :mod:`~modelfleet.drill.timeline` and :mod:`~modelfleet.drill.report`: the figures and the
  verdict (pure); :mod:`~modelfleet.drill.output`: the files; :mod:`~modelfleet.drill.chart`
  and :mod:`~modelfleet.drill.textimage`: the PNGs (Pillow, the ``drill`` extra);
* :mod:`~modelfleet.drill.docimages`: the images of docs/operations.md (``make docs-images``).
"""
