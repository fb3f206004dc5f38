"""The alerts of ``manifests/monitoring/prometheusrule.yaml`` under ``promtool test rules``: for
each alert, input series where it must fire (with its labels and rendered annotations) beside
series where it must stay silent. The rule groups are extracted from the PrometheusRule into a
plain rules file, as the Prometheus Operator does."""

from __future__ import annotations

import subprocess
from pathlib import Path
from typing import Any

import yaml

from tests.monitoring import RULE, tool, write_rules


def _rules(folder: Path) -> dict[str, dict[str, Any]]:
    groups = yaml.safe_load(RULE.read_text())["spec"]["groups"]
    return {r["alert"]: r for g in groups for r in g["rules"]}


def _expected(rule: dict[str, Any], labels: dict[str, str], **values: str) -> dict[str, Any]:
    """The alert as promtool renders it: the rule's labels, ``labels``, and annotations whose
    templates are filled in by hand here (``values``: what each template renders)."""
    annotations = {}
    for key, template in rule["annotations"].items():
        text = template
        for name, value in labels.items():
            text = text.replace(f"{{{{ $labels.{name} }}}}", value)
        for placeholder, value in values.items():
            text = text.replace(placeholder, value)
        annotations[key] = text
    return {"exp_labels": {**rule["labels"], **labels}, "exp_annotations": annotations}


def test_every_alert_fires_on_its_condition_and_only_then(tmp_path: Path) -> None:
    rules_file = write_rules(tmp_path)
    rules = _rules(tmp_path)
    check = subprocess.run(
        [tool("promtool"), "check", "rules", str(rules_file)],
        capture_output=True,
        text=True,
        check=False,
    )
    assert check.returncode == 0, check.stdout + check.stderr

    phase = "modelfleet_operator_release_phase"
    started = "modelfleet_operator_release_step_started_timestamp_seconds"
    tests: list[dict[str, Any]] = [
        {  # held at one step for 40 minutes; another step started just now; a finished release
            "interval": "1m",
            "input_series": [
                {
                    "series": f'{phase}{{namespace="a",release="stuck",phase="Progressing"}}',
                    "values": "1x60",
                },
                {"series": f'{started}{{namespace="a",release="stuck"}}', "values": "0x60"},
                {
                    "series": f'{phase}{{namespace="a",release="moving",phase="Progressing"}}',
                    "values": "1x60",
                },
                {"series": f'{started}{{namespace="a",release="moving"}}', "values": "0+60x60"},
                {
                    "series": f'{phase}{{namespace="a",release="done",phase="Progressing"}}',
                    "values": "0x60",
                },
                {
                    "series": f'{phase}{{namespace="a",release="done",phase="Succeeded"}}',
                    "values": "1x60",
                },
                {"series": f'{started}{{namespace="a",release="done"}}', "values": "0x60"},
            ],
            "alert_rule_test": [
                {"eval_time": "20m", "alertname": "ModelfleetRolloutStuck", "exp_alerts": []},
                {
                    "eval_time": "40m",
                    "alertname": "ModelfleetRolloutStuck",
                    "exp_alerts": [
                        _expected(
                            rules["ModelfleetRolloutStuck"], {"namespace": "a", "release": "stuck"}
                        )
                    ],
                },
            ],
        },
        {  # one release aborted, one not
            "interval": "1m",
            "input_series": [
                {
                    "series": f'{phase}{{namespace="b",release="bad",phase="Aborted"}}',
                    "values": "0 0 1 1 1",
                },
                {
                    "series": f'{phase}{{namespace="b",release="good",phase="Aborted"}}',
                    "values": "0 0 0 0 0",
                },
            ],
            "alert_rule_test": [
                {"eval_time": "1m", "alertname": "ModelfleetRolloutAborted", "exp_alerts": []},
                {
                    "eval_time": "3m",
                    "alertname": "ModelfleetRolloutAborted",
                    "exp_alerts": [
                        _expected(
                            rules["ModelfleetRolloutAborted"], {"namespace": "b", "release": "bad"}
                        )
                    ],
                },
            ],
        },
        {  # a release held back by its checklist for 10 minutes; a short hold never alerts
            "interval": "1m",
            "input_series": [
                {
                    "series": f'{phase}{{namespace="b",release="held",phase="Blocked"}}',
                    "values": "1x15",
                },
                {
                    "series": f'{phase}{{namespace="b",release="brief",phase="Blocked"}}',
                    "values": "1 1 1 0x12",
                },
            ],
            "alert_rule_test": [
                {"eval_time": "5m", "alertname": "ModelfleetReleaseBlocked", "exp_alerts": []},
                {
                    "eval_time": "12m",
                    "alertname": "ModelfleetReleaseBlocked",
                    "exp_alerts": [
                        _expected(
                            rules["ModelfleetReleaseBlocked"], {"namespace": "b", "release": "held"}
                        )
                    ],
                },
            ],
        },
        {  # a signature rejection; verified artifacts never alert
            "interval": "1m",
            "input_series": [
                {
                    "series": 'modelfleet_operator_verifications_total{result="rejected",'
                    'check="signature"}',
                    "values": "0 0 0 1 1 1 1 1",
                },
                {
                    "series": 'modelfleet_operator_verifications_total{result="verified",'
                    'check="none"}',
                    "values": "0+5x8",
                },
            ],
            "alert_rule_test": [
                {
                    "eval_time": "2m",
                    "alertname": "ModelfleetVerificationFailures",
                    "exp_alerts": [],
                },
                {
                    "eval_time": "5m",
                    "alertname": "ModelfleetVerificationFailures",
                    "exp_alerts": [
                        _expected(rules["ModelfleetVerificationFailures"], {"check": "signature"})
                    ],
                },
            ],
        },
        {  # 20 % silent in namespace c (alerts after 10 minutes), 5 % in d (never)
            "interval": "1m",
            "input_series": [
                {"series": 'modelfleet_operator_gateways{namespace="c"}', "values": "100x30"},
                {"series": 'modelfleet_operator_gateways_silent{namespace="c"}', "values": "20x30"},
                {"series": 'modelfleet_operator_gateways{namespace="d"}', "values": "100x30"},
                {"series": 'modelfleet_operator_gateways_silent{namespace="d"}', "values": "5x30"},
            ],
            "alert_rule_test": [
                {"eval_time": "5m", "alertname": "ModelfleetGatewaysSilent", "exp_alerts": []},
                {
                    "eval_time": "15m",
                    "alertname": "ModelfleetGatewaysSilent",
                    "exp_alerts": [
                        _expected(
                            rules["ModelfleetGatewaysSilent"],
                            {"namespace": "c"},
                            **{"{{ $value | humanizePercentage }}": "20%"},
                        )
                    ],
                },
            ],
        },
        {  # 10 of every 110 requests answered 503
            "interval": "1m",
            "input_series": [
                {
                    "series": 'modelfleet_fleet_api_requests_total{route="/v1/report",code="200"}',
                    "values": "0+100x30",
                },
                {
                    "series": 'modelfleet_fleet_api_requests_total{route="/v1/report",code="503"}',
                    "values": "0+10x30",
                },
            ],
            "alert_rule_test": [
                {"eval_time": "3m", "alertname": "ModelfleetFleetApiErrorRate", "exp_alerts": []},
                {
                    "eval_time": "15m",
                    "alertname": "ModelfleetFleetApiErrorRate",
                    "exp_alerts": [
                        _expected(
                            rules["ModelfleetFleetApiErrorRate"],
                            {},
                            **{"{{ $value | humanizePercentage }}": "9.091%"},
                        )
                    ],
                },
            ],
        },
        {  # the serving certificate expires in 7 days, the CA in a year
            "interval": "1m",
            "input_series": [
                {
                    "series": "modelfleet_fleet_api_certificate_expiry_timestamp_seconds"
                    '{certificate="serving"}',
                    "values": "604800x5",
                },
                {
                    "series": "modelfleet_fleet_api_certificate_expiry_timestamp_seconds"
                    '{certificate="client_ca"}',
                    "values": "31536000x5",
                },
            ],
            "alert_rule_test": [
                {
                    "eval_time": "1m",
                    "alertname": "ModelfleetCertificateExpiry",
                    "exp_alerts": [
                        _expected(
                            rules["ModelfleetCertificateExpiry"],
                            {"certificate": "serving"},
                            **{"{{ $value | humanizeDuration }}": "6d 23h 59m 0s"},
                        )
                    ],
                },
            ],
        },
    ]
    spec = tmp_path / "alerts-test.yaml"
    spec.write_text(
        yaml.safe_dump(
            {"rule_files": [rules_file.name], "evaluation_interval": "1m", "tests": tests},
            sort_keys=False,
        )
    )
    run = subprocess.run(
        [tool("promtool"), "test", "rules", spec.name],
        cwd=tmp_path,
        capture_output=True,
        text=True,
        check=False,
    )
    assert run.returncode == 0, run.stdout + run.stderr
    tested = {t["alertname"] for case in tests for t in case["alert_rule_test"]}
    assert tested == set(rules), "every alert of the PrometheusRule has a test"
