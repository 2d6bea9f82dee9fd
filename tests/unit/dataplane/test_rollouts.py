"""Rollouts decided by the manifest: versions, weighted aliases with sticky keys, shadows and
ensembles, through the functions as callers and operators meet them, and the records' report."""

from __future__ import annotations

import itertools
import json
import logging
import subprocess
import sys
import time
from collections import Counter
from pathlib import Path
from typing import Any

import numpy as np
import onnxruntime as ort
import pytest
import yaml
from prediction_service.catalog.manifest import Manifest
from prediction_service.catalog.routing import key_hash, route
from prediction_service.composition import build_components, components
from prediction_service.errors import ManifestError, VersionNotFoundError
from prediction_service.protocols.v1.schemas import PredictRequest
from prediction_service.settings import Settings
from prediction_service.storage.s3 import S3Store
from support import BUCKET, ROOT, CountingStore, http_event, lambda_context, load_function, publish_document

SHIPPED = yaml.safe_load((ROOT / "models" / "manifest.yaml").read_text())
SPLIT = {"1.0": 90, "1.1": 10}
REQUEST_IDS = itertools.count()


def shipped(name: str, version: str | None = None) -> dict[str, Any]:
    return next(m for m in SHIPPED["models"] if m["name"] == name and (version is None or m.get("version") == version))


def rollout_document() -> dict[str, Any]:
    """The shipped manifest, with drive_stats_a in two versions (1.1 is drive_stats_b's file: the
    same interface, other answers) behind a 90/10 `stable` alias and a `canary` alias."""
    document = json.loads(json.dumps(SHIPPED))
    candidate = {**shipped("drive_stats_a"), "version": "1.1", "file": shipped("drive_stats_b")["file"],
                 "sha256": shipped("drive_stats_b")["sha256"]}
    document["models"].insert(1, candidate)
    document["aliases"] = {"drive_stats_a": {"stable": SPLIT, "canary": {"1.1": 100}}}
    return document


@pytest.fixture
def rollout(s3: Any, tmp_path: Path) -> Any:
    publish_document(s3, rollout_document(), tmp_path)
    return s3


def call(function: Any, method: str, path: str, body: Any = None, headers: dict[str, str] | None = None,
         query: str = "") -> tuple[int, dict[str, Any]]:
    event = http_event(method, path, None if body is None else json.dumps(body), headers)
    event["rawQueryString"] = query
    context = lambda_context()
    context.aws_request_id = f"rollouts-{next(REQUEST_IDS)}"  # each run its own record
    result = function.handler(event, context)
    return result["statusCode"], json.loads(result["body"])


def session(name: str) -> ort.InferenceSession:
    return ort.InferenceSession(str(ROOT / "models" / shipped(name)["file"]), providers=["CPUExecutionProvider"])


def last_window() -> np.ndarray:
    series = np.loadtxt(ROOT / "models/data/drive_stats_daily.csv", delimiter=",", skiprows=2, usecols=1)
    return series[-30:][None, :].astype(np.float32)


# -- the manifest ---------------------------------------------------------------------------


def parse(document: dict[str, Any]) -> Manifest:
    return Manifest.parse(json.dumps(document).encode())


@pytest.mark.parametrize(
    ("edit", "reason"),
    [
        (lambda d: d["aliases"]["drive_stats_a"].update(stable={"1.0": 90, "1.1": 20}), "add up to 110, not 100"),
        (lambda d: d["aliases"]["drive_stats_a"].update(stable={"1.0": 90, "2.0": 10}), "'2.0', which are not serving"),
        (lambda d: d["aliases"]["drive_stats_a"].update(stable={"1.0": 100.5}), "integer"),
        (lambda d: d["aliases"]["drive_stats_a"].update({"1.1": {"1.0": 100}}), "alias '1.1' is also one of its"),
        (lambda d: d["aliases"]["drive_stats_a"].pop("stable"), "2 serving versions: give it a 'stable' alias"),
        (lambda d: d["aliases"].update(nope={"stable": {"1": 100}}), "model 'nope', which the manifest does not list"),
        (lambda d: d["models"][1].update(lookback=7), "differs from version '1.0' in kind, window"),
        (lambda d: d["models"][1].update(shadow_of="9.9"), "shadows '9.9', which is not a serving version"),
        (lambda d: d["aliases"]["drive_stats_a"].update(stable={"1.0": 100}) or d["models"][1].update(shadow_of="1.0")
         or d["aliases"]["drive_stats_a"].pop("canary"), None),
    ],
    ids=["weights-110", "unknown-version", "fractional-weight", "alias-is-a-version", "no-stable", "unknown-model",
         "other-interface", "shadow-of-nothing", "a-valid-shadow"],
)
def test_a_manifest_with_bad_weights_or_versions_is_refused_with_its_reason(edit: Any, reason: str | None) -> None:
    document = rollout_document()
    edit(document)
    if reason is None:
        assert parse(document).shadow_for(parse(document).get("drive_stats_a", "1.0")).version == "1.1"
        return
    with pytest.raises(ManifestError) as info:
        parse(document)
    assert reason in info.value.detail, info.value.detail


def ensemble(*members: dict[str, Any], **fields: Any) -> dict[str, Any]:
    document = json.loads(json.dumps(SHIPPED))
    document["models"].append({"name": "mix", "kind": "ensemble", "members": list(members), **fields})
    return document


@pytest.mark.parametrize(
    ("document", "reason"),
    [
        (ensemble({"model": "drive_stats_a"}, {"model": "user_churn"}), "differs from 'drive_stats_a' in kind"),
        (ensemble({"model": "drive_stats_a"}, {"model": "nope"}), "member 'nope' is not in the manifest"),
        (ensemble({"model": "drive_stats_a"}, {"model": "drive_stats_b", "version": "7"}), "has no version '7'"),
        (ensemble({"model": "digits"}, {"model": "digits"}), "members must be forecast or classifier"),
        (ensemble({"model": "drive_stats_mean"}, {"model": "drive_stats_a"}), "members must be forecast or classifier"),
        (ensemble({"model": "drive_stats_a"}), "at least 2"),
        (ensemble({"model": "drive_stats_a"}, {"model": "drive_stats_b"}, file="x.onnx"),
         "ensemble.file\n  Extra inputs are not permitted"),
    ],
    ids=["mixed-kinds", "unknown-member", "unknown-member-version", "generic-members", "nested", "one-member",
         "own-file"],
)
def test_mismatched_ensembles_are_refused(document: dict[str, Any], reason: str) -> None:
    with pytest.raises(ManifestError) as info:
        parse(document)
    assert reason in info.value.detail, info.value.detail


def test_members_of_different_widths_or_classes_are_refused() -> None:
    document = ensemble({"model": "drive_stats_a"}, {"model": "wide"})
    document["models"].append({**shipped("drive_stats_b"), "name": "wide", "lookback": 60})
    with pytest.raises(ManifestError, match="not a valid manifest") as info:
        parse(document)
    assert "differs from 'drive_stats_a' in kind, window and horizon" in info.value.detail
    document = ensemble({"model": "user_churn"}, {"model": "three_classes"})
    document["models"].append({**shipped("user_churn", "1.0"), "name": "three_classes", "group": None, "block": None,
                               "classes": ["a", "b", "c"]})
    with pytest.raises(ManifestError) as info:
        parse(document)
    assert "differs from 'user_churn' in kind, classes and row width" in info.value.detail


# -- routing --------------------------------------------------------------------------------


def test_ten_thousand_keyed_requests_split_within_a_point_and_a_half_of_the_weights() -> None:
    manifest = parse(rollout_document())
    for weights in (SPLIT, {"1.0": 50, "1.1": 50}, {"1.0": 1, "1.1": 99}):
        manifest.aliases["drive_stats_a"]["stable"] = weights
        counts = Counter(route(manifest, "drive_stats_a", key=f"user-{i}").version for i in range(10_000))
        shares = {v: counts[v] / 100 for v in weights}  # in points of 100
        print(f"weights {weights}: {shares}")
        assert all(abs(shares[v] - weights[v]) <= 1.5 for v in weights), shares


def test_without_a_key_the_choice_is_random_by_weight() -> None:
    manifest = parse(rollout_document())
    counts = Counter(route(manifest, "drive_stats_a").version for _ in range(10_000))
    assert abs(counts["1.1"] / 100 - 10) <= 1.5 and route(manifest, "drive_stats_a").key_hash is None


STICKY = """
import json, sys
sys.path.insert(0, {layer!r})
from prediction_service.catalog.manifest import Manifest
from prediction_service.catalog.routing import route
manifest = Manifest.parse(sys.stdin.buffer.read())
print(json.dumps([route(manifest, "drive_stats_a", key=f"user-{{i}}").version for i in range(500)]))
"""


def test_a_key_lands_on_the_same_version_in_every_process() -> None:
    raw = json.dumps(rollout_document()).encode()
    code = STICKY.format(layer=str(ROOT / "layers/prediction"))
    choices = [json.loads(subprocess.run([sys.executable, "-c", code], input=raw, capture_output=True, check=True,
                                         env={"PYTHONHASHSEED": seed, "PATH": "/usr/bin:/bin"}).stdout)
               for seed in ("1", "2", "random")]
    here = [route(parse(rollout_document()), "drive_stats_a", key=f"user-{i}").version for i in range(500)]
    assert choices[0] == choices[1] == choices[2] == here and 20 < here.count("1.1") < 80


def test_ramping_a_version_up_keeps_the_keys_it_had() -> None:
    manifest = parse(rollout_document())
    before = {i for i in range(2000) if route(manifest, "drive_stats_a", key=str(i)).version == "1.1"}
    manifest.aliases["drive_stats_a"]["stable"] = {"1.0": 50, "1.1": 50}
    after = {i for i in range(2000) if route(manifest, "drive_stats_a", key=str(i)).version == "1.1"}
    assert before < after


# -- versions through the functions ---------------------------------------------------------


def test_every_answer_says_which_version_served_it(rollout: Any) -> None:
    models, batch, runs = load_function("models"), load_function("batch"), load_function("runs")
    inference = load_function("inference")
    window = last_window()
    canary = session("drive_stats_b").run(None, {"X": window})[0].ravel().tolist()
    status, body = call(models, "GET", "/v1/models/drive_stats_a/predict", query="version=1.1")
    assert (status, body["model_version"]) == (200, "1.1") and body["prediction"] == pytest.approx(canary, rel=1e-5)
    status, body = call(models, "POST", "/v1/models/drive_stats_a/predict", {"version": "canary"})
    assert (status, body["model_version"]) == (200, "1.1")
    status, body = call(batch, "POST", "/v1/predict", {"predictions": [
        {"model_name": "drive_stats_a", "version": "1.0"}, {"model_name": "drive_stats_a", "version": "1.1"}]})
    assert [p["model_version"] for p in body["predictions"]] == ["1.0", "1.1"]
    status, body = call(runs, "POST", "/api/runs", {"run": {
        "pipeline_uuid": "drive_stats", "block_uuid": "drive_stats_a", "variables": {"version": "1.1"},
        "record": False}})
    assert (status, body["run"]["model_version"], body["run"]["model_name"]) == (200, "1.1", "drive_stats_a")
    infer = {"inputs": [{"name": "X", "shape": [1, 30], "datatype": "FP32", "data": window.ravel().tolist()}]}
    status, body = call(inference, "POST", "/v2/models/drive_stats_a/versions/canary/infer", infer)
    assert (status, body["model_version"]) == (200, "1.1")


def test_an_unknown_version_is_a_404_that_names_the_known_ones(rollout: Any) -> None:
    models, inference = load_function("models"), load_function("inference")
    message = "model 'drive_stats_a' has no version '2.0'; its versions: 1.0, 1.1, stable, canary"
    status, body = call(models, "GET", "/v1/models/drive_stats_a/predict", query="version=2.0")
    assert (status, body["error_message"], body["model_name"]) == (404, message, "drive_stats_a")
    assert call(inference, "GET", "/v2/models/drive_stats_a/versions/2.0")[1] == {"error": message}
    with pytest.raises(VersionNotFoundError):
        components().service.predict("drive_stats_a", PredictRequest(version="2.0"), time.perf_counter())
    status, body = call(models, "POST", "/v1/models/drive_stats_a/predict", {"version": "1.0"}, query="version=1.1")
    assert status == 400 and "disagree" in body["error_message"]


def test_the_model_lists_its_versions_aliases_and_shadows(rollout: Any) -> None:
    status, body = call(load_function("models"), "GET", "/v1/models/drive_stats_a")
    assert status == 200 and body["versions"] == ["1.0", "1.1"] and body["version"] == "1.0"
    assert body["aliases"] == {"stable": SPLIT, "canary": {"1.1": 100}}
    churn = call(load_function("models"), "GET", "/v1/models/user_churn")[1]
    assert churn["versions"] == ["1.0", "1.1"] and churn["shadows"] == {"1.0": "1.1"}
    listed = {m["name"]: m for m in call(load_function("models"), "GET", "/v1/models")[1]["models"]}
    assert list(listed).count("drive_stats_a") == 1 and listed["drive_stats_mean"]["members"] == [
        "drive_stats_a", "drive_stats_b"]


def test_a_routing_key_header_is_sticky_and_recorded_only_as_a_hash(rollout: Any) -> None:
    runs = load_function("runs")
    keys = [f"customer-{i}" for i in range(40)]
    versions = {}
    for key in keys:
        for _ in range(2):
            status, body = call(runs, "POST", "/api/runs", {"run": {
                "pipeline_uuid": "drive_stats", "block_uuid": "drive_stats_a", "record": True}}, {"x-routing-key": key})
            assert status == 200
            assert versions.setdefault(key, body["run"]["model_version"]) == body["run"]["model_version"]
    assert set(versions.values()) == {"1.0", "1.1"}
    listed = rollout.list_objects_v2(Bucket=BUCKET, Prefix="records/")["Contents"]
    records = [json.loads(rollout.get_object(Bucket=BUCKET, Key=o["Key"])["Body"].read()) for o in listed]
    assert {r["routing_key_hash"] for r in records} == {key_hash(k) for k in keys}
    assert all(r["alias"] == "stable" and r["model_version"] == versions[next(
        k for k in keys if key_hash(k) == r["routing_key_hash"])] for r in records)
    assert not any("customer-" in json.dumps(r) for r in records), "the key itself is never kept"


def test_a_classification_is_routed_by_its_ids(rollout: Any, tmp_path: Path) -> None:
    document = rollout_document()
    churn = next(m for m in document["models"] if m["name"] == "user_churn" and m["version"] == "1.1")
    churn.pop("shadow_of")
    document["aliases"]["user_churn"] = {"stable": {"1.0": 50, "1.1": 50}}
    publish_document(rollout, document, tmp_path)
    service = components().service
    seen = {i: service.predict("user_churn", PredictRequest(ids=[i]), 0.0).route.version for i in range(1, 41)}
    again = {i: service.predict("user_churn", PredictRequest(ids=[i]), 0.0).route.version for i in range(1, 41)}
    assert seen == again and set(seen.values()) == {"1.0", "1.1"}


# -- shadows --------------------------------------------------------------------------------


def runs_record(s3: Any) -> dict[str, Any]:
    (listed,) = s3.list_objects_v2(Bucket=BUCKET, Prefix="records/")["Contents"]
    return json.loads(s3.get_object(Bucket=BUCKET, Key=listed["Key"])["Body"].read())


def test_the_shipped_shadow_runs_beside_the_live_version_and_goes_into_the_record(s3: Any) -> None:
    from generate_events import PLAYGROUND_RUN

    status, body = call(load_function("runs"), "POST", "/api/runs", PLAYGROUND_RUN)
    assert status == 200 and body["run"]["model_version"] == "1.0"
    record = runs_record(s3)
    shadow = record["shadow"]
    assert shadow["model_version"] == "1.1" and shadow["status"] == "Success"
    features = np.loadtxt(ROOT / "models/data/user_features.csv", delimiter=",", skiprows=2)
    rows = features[np.isin(features[:, 0], [1, 5, 100])][:, 1:].astype(np.float32)
    candidate = ort.InferenceSession(str(ROOT / "models/user_churn_v1_1.onnx")).run(["probabilities"], {"X": rows})[0]
    assert np.allclose(shadow["output"][0], candidate, atol=1e-6), "the shadow's own output, computed independently"
    live = np.asarray(record["output"][0])
    assert shadow["agrees"] == bool((live.argmax(1) == candidate.argmax(1)).all())
    assert body["run"]["output"] == record["output"], "the answer is the live version's"


def playground_answers(count: int = 10) -> list[tuple[int, Any]]:
    """The runs function's status and output for the playground document's run, `count` times."""
    from generate_events import PLAYGROUND_RUN

    runs = load_function("runs")
    answers = [call(runs, "POST", "/api/runs", PLAYGROUND_RUN) for _ in range(count)]
    return [(status, body["run"]["output"]) for status, body in answers]


def all_records(s3: Any) -> list[dict[str, Any]]:
    listed = s3.list_objects_v2(Bucket=BUCKET, Prefix="records/").get("Contents", [])
    return [json.loads(s3.get_object(Bucket=BUCKET, Key=o["Key"])["Body"].read()) for o in listed]


def test_a_shadow_that_fails_changes_nothing_for_the_caller(s3: Any, tmp_path: Path, capsys: Any, caplog: Any) -> None:
    without = json.loads(json.dumps(SHIPPED))
    without["models"] = [m for m in without["models"] if not m.get("shadow_of")]
    publish_document(s3, without, tmp_path)
    plain = playground_answers()
    publish_document(s3, SHIPPED, tmp_path)
    s3.delete_object(Bucket=BUCKET, Key="models/user_churn_v1_1.onnx")  # every shadow run now fails to load
    capsys.readouterr()
    assert playground_answers() == plain and all(status == 200 for status, _ in plain)
    shadows = [r["shadow"] for r in all_records(s3) if "shadow" in r]
    assert len(shadows) == 10
    assert all(s["status"] == "Failed" and "does not exist" in s["error_message"] for s in shadows)
    out = capsys.readouterr().out.replace(" ", "")
    assert out.count('"ShadowFailures":[1.0]') == 10 and out.count('"ShadowRuns":[1.0]') == 10
    assert caplog.text.count("shadow failed") == 10


class SlowShadowFile(CountingStore):
    """S3 that takes `delay` seconds to answer for the shadow's model file only."""

    def fetch_small(self, key: str, limit: int) -> Any:
        if key.endswith("user_churn_v1_1.onnx"):
            time.sleep(self.delay)
        return self.inner.fetch_small(key, limit)


def test_a_shadow_past_its_bound_changes_nothing_and_adds_at_most_the_bound(
    s3: Any, monkeypatch: pytest.MonkeyPatch
) -> None:
    from generate_events import PLAYGROUND_RUN
    from prediction_service.protocols.v1.schemas import RunRequest

    monkeypatch.setenv("SHADOW_TIMEOUT_MS", "100")
    parts = build_components(Settings.from_env(), store=SlowShadowFile(S3Store(BUCKET, s3), delay=1.0))
    spec = RunRequest.model_validate(PLAYGROUND_RUN).run
    parts.registry.load(parts.registry.spec("user_churn", "1.0"))  # the live version warm, its shadow cold
    started = time.perf_counter()
    result = parts.runner.run(spec, "slow-shadow", started)
    elapsed = time.perf_counter() - started
    assert result.shadow is not None and result.shadow.status == "TimedOut"
    assert elapsed < 0.1 + 0.2, f"{elapsed:.3f} s: the shadow held the answer past its bound"
    plain = components().runner.run(spec.model_copy(update={"record": False}), "plain", time.perf_counter())
    assert result.value.run.output == plain.value.run.output
    shadow = next(r for r in all_records(s3) if r["request_id"] == "slow-shadow")["shadow"]
    assert shadow["status"] == "TimedOut" and shadow["model_version"] == "1.1"


# -- ensembles ------------------------------------------------------------------------------


def test_an_ensemble_forecast_is_the_mean_of_its_members_computed_independently(s3: Any) -> None:
    window = last_window()
    members = [session(name).run(None, {"X": window})[0].ravel() for name in ("drive_stats_a", "drive_stats_b")]
    expected = np.mean(members, axis=0)
    models = load_function("models")
    status, body = call(models, "GET", "/v1/models/drive_stats_mean/predict", query="")
    assert status == 200 and body["prediction"] == pytest.approx(expected.tolist(), rel=1e-5)
    status, body = call(models, "POST", "/v1/models/drive_stats_mean/predict",
                        {"inputs": window.tolist(), "members": True})
    assert body["prediction"] == pytest.approx(expected.tolist(), rel=1e-5)
    assert [(m["model_name"], m["model_version"]) for m in body["members"]] == [("drive_stats_a", "1.0"),
                                                                               ("drive_stats_b", "1.0")]
    assert body["members"][1]["prediction"] == pytest.approx(members[1].tolist(), rel=1e-5)
    infer = {"inputs": [{"name": "X", "shape": [1, 30], "datatype": "FP32", "data": window.ravel().tolist()}]}
    status, v2 = call(load_function("inference"), "POST", "/v2/models/drive_stats_mean/infer", infer)
    assert status == 200 and v2["outputs"][0]["data"] == pytest.approx(expected.tolist(), rel=1e-5)
    status, batch = call(load_function("batch"), "POST", "/v1/predict",
                         {"predictions": [{"model_name": "drive_stats_mean"}]})
    assert batch["predictions"][0]["prediction"] == pytest.approx(expected.tolist(), rel=1e-5)
    status, run = call(load_function("runs"), "POST", "/api/runs", {"run": {
        "pipeline_uuid": "drive_stats", "block_uuid": "drive_stats_mean", "record": False}})
    assert status == 200 and run["run"]["output"][0] == pytest.approx(expected.tolist(), rel=1e-5)


def test_a_classifier_ensemble_is_the_weighted_soft_vote_of_its_members(s3: Any, tmp_path: Path) -> None:
    document = json.loads(json.dumps(SHIPPED))
    document["models"].append({"name": "churn_vote", "kind": "ensemble", "members": [
        {"model": "user_churn", "version": "1.0", "weight": 3}, {"model": "user_churn", "version": "1.1"}]})
    publish_document(s3, document, tmp_path)
    rows = [[1.5, 30, 2, 4], [9, 1, 48, 0], [3, 12, 10, 2]]
    x = np.asarray(rows, dtype=np.float32)
    probabilities = [ort.InferenceSession(str(ROOT / "models" / f)).run(["probabilities"], {"X": x})[0]
                     for f in ("user_churn.onnx", "user_churn_v1_1.onnx")]
    expected = 0.75 * probabilities[0] + 0.25 * probabilities[1]
    status, body = call(load_function("models"), "POST", "/v1/models/churn_vote/predict",
                        {"inputs": rows, "probability": True})
    assert status == 200 and np.allclose(body["probabilities"], expected, atol=1e-6)
    assert body["prediction"] == expected.argmax(1).tolist() and body["classes"] == ["stays", "churns"]
    infer = {"inputs": [{"name": "X", "shape": [3, 4], "datatype": "FP32", "data": x.ravel().tolist()}]}
    status, v2 = call(load_function("inference"), "POST", "/v2/models/churn_vote/infer", infer)
    outputs = {o["name"]: o["data"] for o in v2["outputs"]}
    assert outputs["label"] == expected.argmax(1).tolist()
    assert np.allclose(np.reshape(outputs["probabilities"], (3, 2)), expected, atol=1e-6)


# -- a bad manifest in S3, records and the report --------------------------------------------


def test_a_manifest_with_bad_weights_is_refused_and_the_cached_good_one_keeps_serving(
    rollout: Any, monkeypatch: pytest.MonkeyPatch, capsys: Any, caplog: Any
) -> None:
    monkeypatch.setenv("MODEL_REVALIDATE_SECONDS", "0")
    components.cache_clear()
    models = load_function("models")
    cache_log = logging.getLogger("prediction_service.storage.cache")
    monkeypatch.setattr(cache_log, "handlers", [*cache_log.handlers])  # restored after the test
    cache_log.addHandler(caplog.handler)  # the functions give the library's loggers their own handler
    assert call(models, "GET", "/v1/models/drive_stats_a/predict", query="version=1.1")[0] == 200
    bad = rollout_document()
    bad["aliases"]["drive_stats_a"]["stable"] = {"1.0": 90, "1.1": 5}  # a hand edit that skipped publish-models
    rollout.put_object(Bucket=BUCKET, Key="models/manifest.yaml", Body=json.dumps(bad).encode())
    status, body = call(models, "GET", "/v1/models/drive_stats_a/predict", query="version=1.1")
    assert (status, body["model_version"]) == (200, "1.1")
    assert '"CacheStaleServed":[1.0]' in capsys.readouterr().out.replace(" ", "")
    assert "serving cached models/manifest.yaml" in caplog.text and "add up to 95, not 100" in caplog.text


def test_the_report_counts_requests_errors_and_shadow_disagreements_per_version(s3: Any, capsys: Any) -> None:
    from rollout_report import main, report

    runs = load_function("runs")
    for user in range(1, 61):
        call(runs, "POST", "/api/runs", {"run": {"pipeline_uuid": "ml_inference_online",
                                                "block_uuid": "ml/inference/online/predictions",
                                                "variables": {"user_ids": [user]}}})
    call(runs, "POST", "/api/runs", {"run": {"pipeline_uuid": "ml_inference_online",
                                            "block_uuid": "ml/inference/online/predictions",
                                            "variables": {"user_ids": [999999]}}})
    records = all_records(s3)
    figures = report(records)
    live = figures["versions"]["user_churn/1.0"]
    assert live["requests"] == 61 and live["errors"] == 1
    shadow = figures["shadows"]["user_churn/1.0 -> 1.1"]
    disagreeing = sum(1 for r in records if r.get("shadow") and r["shadow"]["agrees"] is False)
    assert shadow["runs"] == 60 and shadow["disagreements"] == disagreeing and shadow["failed"] == 0
    features = np.loadtxt(ROOT / "models/data/user_features.csv", delimiter=",", skiprows=2)[:60, 1:].astype(np.float32)
    labels = [ort.InferenceSession(str(ROOT / "models" / f)).run(["label"], {"X": features})[0]
              for f in ("user_churn.onnx", "user_churn_v1_1.onnx")]
    assert disagreeing == int((labels[0] != labels[1]).sum()), "disagreement computed independently"
    capsys.readouterr()
    assert main(["--bucket", BUCKET]) == 0
    printed = capsys.readouterr().out
    print(printed)
    assert "user_churn/1.0" in printed and "user_churn/1.0 -> 1.1" in printed


def test_the_chosen_version_is_on_a_prediction_s_log_lines_and_on_no_later_ones(rollout: Any) -> None:
    import io

    from prediction_service.observability import ROUTE_KEYS, logger

    models = load_function("models")
    rollout.delete_object(Bucket=BUCKET, Key="models/drive_stats_b.onnx")  # version 1.1's file: it fails to load
    lines = io.StringIO()
    handler = logging.StreamHandler(lines)
    handler.setFormatter(logger.registered_formatter)  # the JSON lines the functions write
    logger.addHandler(handler)
    try:
        status, body = call(models, "GET", "/v1/models/drive_stats_a/predict", query="version=1.1",
                            headers={"x-routing-key": "customer-7"})
    finally:
        logger.removeHandler(handler)
    assert status == 500 and body["model_name"] == "drive_stats_a"
    (failure,) = [json.loads(line) for line in lines.getvalue().splitlines() if '"level":"ERROR"' in line]
    assert (failure["model_version"], failure["routing_key_hash"]) == ("1.1", key_hash("customer-7"))
    assert not set(ROUTE_KEYS) & set(logger.get_current_keys()), "nothing left for the next request's lines"
    assert call(models, "GET", "/v1/models/drive_stats_a/predict", query="version=1.0")[0] == 200
    assert not set(ROUTE_KEYS) & set(logger.get_current_keys())


def test_an_ensemble_answers_the_same_through_v1_v2_and_the_batch_for_the_same_key(s3: Any, tmp_path: Path) -> None:
    """Bug: with drive_stats_a in two versions at 50/50, 90 of 200 keys got another answer from
    v2 than from /v1 (v2 took each member's heaviest version). The data plane routes an
    ensemble's members with the request's key, whatever the protocol."""
    document = rollout_document()
    document["aliases"] = {"drive_stats_a": {"stable": {"1.0": 50, "1.1": 50}}}
    publish_document(s3, document, tmp_path)
    manifest = parse(document)
    window = last_window()
    own = {name: session(name).run(None, {"X": window})[0].ravel() for name in ("drive_stats_a", "drive_stats_b")}
    models, inference, batch = load_function("models"), load_function("inference"), load_function("batch")
    infer = {"inputs": [{"name": "X", "shape": [1, 30], "datatype": "FP32", "data": window.ravel().tolist()}]}
    versions = Counter()
    for i in range(200):
        key = {"X-Routing-Key": f"user-{i}"}
        chosen = route(manifest, "drive_stats_a", None, f"user-{i}").version
        versions[chosen] += 1
        # 1.1 serves drive_stats_b's file: the mean is then drive_stats_b's forecast with itself
        member_a = own["drive_stats_a"] if chosen == "1.0" else own["drive_stats_b"]
        expected = ((member_a + own["drive_stats_b"]) / 2).tolist()
        _, v1 = call(models, "POST", "/v1/models/drive_stats_mean/predict",
                     {"inputs": window.tolist(), "members": True}, key)
        _, v2 = call(inference, "POST", "/v2/models/drive_stats_mean/infer", infer, key)
        _, many = call(batch, "POST", "/v1/predict",
                       {"predictions": [{"model_name": "drive_stats_mean", "inputs": window.tolist()}]}, key)
        assert v1["members"][0]["model_version"] == chosen
        assert v1["prediction"] == pytest.approx(expected, rel=1e-5), i
        assert v2["outputs"][0]["data"] == pytest.approx(v1["prediction"], rel=1e-6), i
        assert many["predictions"][0]["prediction"] == v1["prediction"], i
    assert min(versions.values()) > 60, versions  # both versions of the member answered
