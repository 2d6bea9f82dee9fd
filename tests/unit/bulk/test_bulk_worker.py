"""The bulk worker on the batch events Distributed Map sends, as AWS documents them:
`{"Items": [...], "BatchInput": {...}}`, each item a row the reader read (wrapped by the state
machine's ItemSelector as `{"index", "row"}`: CSV values are text, JSON Lines values JSON) or an
S3 object of a prefix (`{"Key", "Size", ...}`, from listObjectsV2). moto's Step Functions
interpreter has no ItemBatcher and no JSON Lines reader: these tests are where those events are
checked (tests/sam/test_bulk_state_machine.py runs the rest on moto)."""

from __future__ import annotations

import json
from collections import Counter
from typing import Any

import pytest
import yaml
from bulk_datasets import encode, rows, write_shards
from prediction_service.bulk.worker import MAX_BATCH_EVENT_BYTES, MAX_BATCH_ITEMS, score_batch
from prediction_service.composition import components
from support import ROOT, publish_document, publish_with

DATA = "bulk-data"
CHURN_COLUMNS = ["sessions_per_week", "days_since_last_login", "tenure_months", "support_tickets"]


@pytest.fixture
def data(s3: Any) -> Any:
    s3.create_bucket(Bucket=DATA)
    return s3


def job(model: str = "user_churn", **fields: Any) -> dict[str, Any]:
    source = {"key": "datasets/rows.csv"} if "input" not in fields else {}
    return {"job_id": "job-1", "model": model, "input": {"bucket": DATA, **source},
            "output": {"bucket": DATA, "prefix": "out/"}, **fields}


def wrapped(values: list[dict[str, Any]], first: int = 0) -> list[dict[str, Any]]:
    """Rows as the state machine's ItemSelector sends them."""
    return [{"index": first + i, "row": row} for i, row in enumerate(values)]


def as_csv_items(values: list[dict[str, Any]]) -> list[dict[str, Any]]:
    """Rows as Distributed Map's CSV reader gives them: every value text."""
    return [{k: json.dumps(v) if isinstance(v, list) else str(v) for k, v in row.items()} for row in values]


def run(event: Any) -> dict[str, Any]:
    return score_batch(event, components().dataplane, components().store._client)


def lines(s3: Any, key: str) -> list[dict[str, Any]]:
    return [json.loads(line) for line in s3.get_object(Bucket=DATA, Key=key)["Body"].read().splitlines()]


def test_a_csv_batch_is_scored_through_the_data_plane_and_written_under_its_rows(data: Any) -> None:
    values = as_csv_items(list(rows("user_churn", 5)))
    result = run({"Items": wrapped(values, first=1000), "BatchInput": {"job": job(id_column="user_id")}})
    assert result["batch"] == "rows-000001000-000001004"
    assert (result["rows"], result["scored"], result["refused"]) == (5, 5, 0)
    assert result["results"] == "out/job-1/results/rows-000001000-000001004.jsonl" and result["errors"] is None
    out = lines(data, result["results"])
    assert [r["id"] for r in out] == [v["user_id"] for v in values]
    # the same answers as the online API gives for the same rows
    online = components().service.predict("user_churn", _predict([[float(v[c]) for c in CHURN_COLUMNS] for v in values]),
                                          0.0).value
    assert [r["label"] for r in out] == ["stays" if p == 0 else "churns" for p in online.prediction]
    for record, probabilities in zip(out, online.probabilities, strict=True):
        assert record["model_version"] == "1.0"
        assert list(record["probabilities"].values()) == pytest.approx(probabilities, abs=1e-6)
    stats = json.loads(data.get_object(Bucket=DATA, Key="out/job-1/batches/rows-000001000-000001004.json")["Body"].read())
    assert stats == {k: v for k, v in result.items() if k != "seconds"}


def _predict(inputs: list[list[float]]) -> Any:
    from prediction_service.protocols.v1.schemas import PredictRequest

    return PredictRequest(inputs=inputs, probability=True)


def test_json_lines_rows_keep_their_types_and_a_forecast_has_horizon_values(data: Any) -> None:
    values = list(rows("drive_stats_a", 3))
    result = run({"Items": wrapped(values), "BatchInput": {"job": job("drive_stats_a", input={
        "bucket": DATA, "key": "datasets/windows.jsonl"})}})
    assert result["scored"] == 3
    out = lines(data, result["results"])
    assert [len(r["forecast"]) for r in out] == [3, 3, 3]
    assert all(0.3 < v < 0.8 for r in out for v in r["forecast"])


def test_a_malformed_row_goes_to_the_errors_object_and_the_batch_goes_on(data: Any) -> None:
    values = as_csv_items(list(rows("user_churn", 4)))
    values[1]["tenure_months"] = "many"
    values[2]["support_tickets"] = "NaN"
    del values[3]["sessions_per_week"]
    values.append({"sessions_per_week": "1", "days_since_last_login": "1", "tenure_months": "1", "support_tickets": "1"})
    result = run({"Items": wrapped(values), "BatchInput": {"job": job(id_column="user_id")}})
    assert (result["scored"], result["refused"]) == (1, 4)
    errors = lines(data, result["errors"])
    assert [(e["index"], e["id"]) for e in errors] == [(1, "1"), (2, "2"), (3, "3"), (4, None)]
    reasons = [e["reason"] for e in errors]
    assert "column 'tenure_months' must hold numbers" in reasons[0]
    assert "finite" in reasons[1]
    assert reasons[2] == "column 'sessions_per_week' is missing"
    assert reasons[3] == "the id column 'user_id' is missing"
    assert [r["id"] for r in lines(data, result["results"])] == ["0"]


def pairs_model() -> bytes:
    """A graph with a free second dimension that reshapes each row into pairs: a row of an odd
    length is one onnxruntime refuses when it runs."""
    from onnx import TensorProto, helper

    graph = helper.make_graph(
        [helper.make_node("Reshape", ["values", "shape"], ["pairs"])], "pairs",
        [helper.make_tensor_value_info("values", TensorProto.FLOAT, ["batch", "n"])],
        [helper.make_tensor_value_info("pairs", TensorProto.FLOAT, None)],
        initializer=[helper.make_tensor("shape", TensorProto.INT64, [3], [0, -1, 2])])
    return helper.make_model(graph, opset_imports=[helper.make_opsetid("", 17)]).SerializeToString()


def test_a_json_lines_row_that_is_not_an_object_is_refused_alone(data: Any) -> None:
    values: list[Any] = list(rows("drive_stats_a", 2))
    values.insert(1, [1, 2, 3])  # Distributed Map's JSON Lines reader passes any JSON value on
    result = run({"Items": wrapped(values), "BatchInput": {"job": job("drive_stats_a", input={
        "bucket": DATA, "key": "w.jsonl"})}})
    assert (result["scored"], result["refused"]) == (2, 1)
    assert lines(data, result["errors"]) == [{"id": None, "index": 1, "reason": "the row is not a JSON object"}]


def test_rows_the_model_refuses_together_are_scored_one_by_one_and_only_the_bad_one_refused(
        data: Any, tmp_path: Any) -> None:
    publish_with(data, tmp_path, "pairs", pairs_model())
    components.cache_clear()
    values = [{"id": "a", "values": [1, 2]}, {"id": "b", "values": [1, 2, 3]}, {"id": "c", "values": [5, 6, 7, 8]},
              {"id": "d", "values": [0, 1]}]
    result = run({"Items": wrapped(values), "BatchInput": {"job": job("pairs", input={"bucket": DATA, "key": "p.jsonl"})}})
    assert (result["scored"], result["refused"]) == (3, 1)
    assert lines(data, result["errors"])[0]["id"] == "b"
    assert lines(data, result["errors"])[0]["reason"].startswith("the model refused the row: ")
    assert [(r["id"], r["pairs"]) for r in lines(data, result["results"])] == [
        ("a", [[1.0, 2.0]]), ("c", [[5.0, 6.0], [7.0, 8.0]]), ("d", [[0.0, 1.0]])]


def test_shards_under_a_prefix_are_streamed_csv_and_json_lines_alike(data: Any) -> None:
    write_shards(data, DATA, "datasets/churn/", "user_churn", 250, shard_rows=100, fmt="csv")
    data.put_object(Bucket=DATA, Key="datasets/churn/extra.jsonl",
                    Body=encode(list(rows("user_churn", 3)), "jsonl") + b"\n[1, 2]\n\xff\xfe\n")
    spec = job(id_column="user_id", input={"bucket": DATA, "prefix": "datasets/churn/"})
    results = [run({"Items": [{"Key": key, "Size": 1}], "BatchInput": {"job": spec}})
               for key in ("datasets/churn/part-00000.csv", "datasets/churn/part-00002.csv", "datasets/churn/extra.jsonl")]
    assert [(r["scored"], r["refused"]) for r in results] == [(100, 0), (50, 0), (3, 2)]
    assert results[0]["batch"].startswith("part-00000.csv-")
    assert [r["id"] for r in lines(data, results[1]["results"])] == [str(i) for i in range(200, 250)]
    errors = lines(data, results[2]["errors"])
    assert [(e["object"], e["line"], e["reason"]) for e in errors] == [
        ("datasets/churn/extra.jsonl", 5, "the line is not a JSON object"),
        ("datasets/churn/extra.jsonl", 6, "the line is not UTF-8 text")]


def test_csv_output_flattens_objects_into_columns(data: Any) -> None:
    values = as_csv_items(list(rows("user_churn", 2)))
    spec = job(id_column="user_id", output={"bucket": DATA, "prefix": "out/", "format": "csv"})
    result = run({"Items": wrapped(values), "BatchInput": {"job": spec}})
    text = data.get_object(Bucket=DATA, Key=result["results"])["Body"].read().decode()
    header, *body = text.splitlines()
    assert header == "id,model_version,label,probabilities_stays,probabilities_churns"
    assert len(body) == 2 and body[0].startswith("0,1.0,")


def test_running_a_batch_again_writes_the_same_objects(data: Any) -> None:
    values = as_csv_items(list(rows("user_churn", 20)))
    values[3]["tenure_months"] = ""
    event = {"Items": wrapped(values), "BatchInput": {"job": job(id_column="user_id")}}
    first = run(event)
    objects = {o["Key"]: data.get_object(Bucket=DATA, Key=o["Key"])["Body"].read()
               for o in data.list_objects_v2(Bucket=DATA, Prefix="out/")["Contents"]}
    second = run(event)
    again = {o["Key"]: data.get_object(Bucket=DATA, Key=o["Key"])["Body"].read()
             for o in data.list_objects_v2(Bucket=DATA, Prefix="out/")["Contents"]}
    assert {k: v for k, v in first.items() if k != "seconds"} == {k: v for k, v in second.items() if k != "seconds"}
    assert again == objects and len(objects) == 3  # results, errors, counts


def test_a_weighted_alias_keeps_each_row_on_the_version_its_id_routes_to(data: Any, tmp_path: Any) -> None:
    document = yaml.safe_load((ROOT / "models/manifest.yaml").read_text())
    for entry in document["models"]:
        if entry["name"] == "user_churn":
            entry.pop("shadow_of", None)
    document["aliases"] = {"user_churn": {"stable": {"1.0": 50, "1.1": 50}}}
    publish_document(data, document, tmp_path)
    values = as_csv_items(list(rows("user_churn", 200)))
    event = {"Items": wrapped(values), "BatchInput": {"job": job(id_column="user_id")}}
    result = run(event)
    versions = Counter(r["model_version"] for r in lines(data, result["results"]))
    assert set(versions) == {"1.0", "1.1"} and 60 < versions["1.0"] < 140
    assert result["versions"] == dict(sorted(versions.items()))
    # each id answers as a single request with that routing key would
    registry = components().registry
    for record in lines(data, result["results"])[:40]:
        assert registry.route("user_churn", None, record["id"]).spec.version == record["model_version"]
    # pinned to a version, every row takes it
    pinned = run({"Items": wrapped(values), "BatchInput": {"job": job(id_column="user_id", version="1.1")}})
    assert pinned["versions"] == {"1.1": 200}


def test_text_rows_are_embedded_in_calls_of_at_most_64(text_s3: Any) -> None:
    text_s3.create_bucket(Bucket=DATA)
    values = list(rows("all-minilm-l6-v2", 70))
    values[5]["text"] = "   "
    result = run({"Items": wrapped(values), "BatchInput": {"job": job("all-minilm-l6-v2", input={
        "bucket": DATA, "key": "t.jsonl"})}})
    assert (result["scored"], result["refused"]) == (69, 1)
    out = lines(text_s3, result["results"])
    assert len(out[0]["embedding"]) == 384 and sum(v * v for v in out[0]["embedding"]) == pytest.approx(1, abs=1e-3)
    assert lines(text_s3, result["errors"])[0]["reason"] == "column 'text' is empty"


def test_a_generic_onnx_model_reads_a_column_per_input(data: Any) -> None:
    values = [{k: v for k, v in row.items() if k != "label"} for row in rows("digits", 20)]
    truth = [row["label"] for row in rows("digits", 20)]
    result = run({"Items": wrapped(as_csv_items(values)), "BatchInput": {"job": job("digits", input={
        "bucket": DATA, "key": "digits.csv"})}})
    assert result["scored"] == 20
    labels = [r["label"] for r in lines(data, result["results"])]
    assert sum(a == b for a, b in zip(labels, truth, strict=True)) >= 17


MALFORMED = {
    "not an object": ["Items"],
    "no Items": {"BatchInput": {"job": job()}},
    "empty Items": {"Items": [], "BatchInput": {"job": job()}},
    "Items not a list": {"Items": "rows", "BatchInput": {"job": job()}},
    "no BatchInput": {"Items": [{"index": 0, "row": {}}]},
    "no job": {"Items": [{"index": 0, "row": {}}], "BatchInput": {}},
    "a job that is not one": {"Items": [{"index": 0, "row": {}}], "BatchInput": {"job": {"model": "x"}}},
    "rows not wrapped": {"Items": [{"user_id": "1"}], "BatchInput": {"job": job()}},
    "objects for a row job": {"Items": [{"Key": "a.csv"}], "BatchInput": {"job": job()}},
    "too many items": {"Items": [{"index": i, "row": {}} for i in range(MAX_BATCH_ITEMS + 1)],
                       "BatchInput": {"job": job()}},
    "too many bytes": {"Items": [{"index": 0, "row": {"text": "x" * MAX_BATCH_EVENT_BYTES}}],
                       "BatchInput": {"job": job()}},
}


@pytest.mark.parametrize("event", MALFORMED.values(), ids=MALFORMED.keys())
def test_a_malformed_or_too_large_batch_is_refused_with_a_reason_and_nothing_written(data: Any, event: Any) -> None:
    result = run(event)
    assert set(result) == {"refused"} and 10 < len(result["refused"]) < 400
    assert "Traceback" not in result["refused"]
    assert "Contents" not in data.list_objects_v2(Bucket=DATA)


def test_a_batch_whose_input_cannot_be_read_fails_for_the_state_machine_to_retry(data: Any) -> None:
    spec = job(input={"bucket": DATA, "prefix": "datasets/gone/"})
    with pytest.raises(Exception, match="NoSuchKey"):
        run({"Items": [{"Key": "datasets/gone/part-0.csv"}], "BatchInput": {"job": spec}})
    assert "Contents" not in data.list_objects_v2(Bucket=DATA)


def test_a_row_that_breaks_a_reader_or_the_writer_is_refused_alone_and_the_shard_goes_on(data: Any) -> None:
    """A CSV field past csv's own 128 KiB limit, JSON nested 100,000 deep, an id with a lone
    surrogate (valid JSON, not writable as UTF-8): each is one row's refusal, not the batch's failure."""
    churn = encode(list(rows("user_churn", 2)), "csv").decode()
    data.put_object(Bucket=DATA, Key="datasets/odd/long.csv", Body=(churn + "2,1,1,1," + "1" * 200_000 + "\n").encode())
    deep = "[" * 100_000 + "]" * 100_000
    lines_ = ['{"user_id": "\\ud800", "sessions_per_week": 1, "days_since_last_login": 1, "tenure_months": 1, '
              '"support_tickets": 1}', '{"user_id": 7, "x": ' + deep + "}", '{"user_id": 8, "sessions_per_week": 1, '
              '"days_since_last_login": 1, "tenure_months": 1, "support_tickets": 1}']
    data.put_object(Bucket=DATA, Key="datasets/odd/odd.jsonl", Body="\n".join(lines_).encode())
    spec = job(id_column="user_id", input={"bucket": DATA, "prefix": "datasets/odd/"})
    long_csv = run({"Items": [{"Key": "datasets/odd/long.csv"}], "BatchInput": {"job": spec}})
    assert (long_csv["scored"], long_csv["refused"]) == (2, 1)
    assert lines(data, long_csv["errors"])[0]["reason"].startswith("column 'support_tickets' must hold finite")
    odd = run({"Items": [{"Key": "datasets/odd/odd.jsonl"}], "BatchInput": {"job": spec}})
    assert (odd["scored"], odd["refused"]) == (1, 2)
    assert [e["reason"] for e in lines(data, odd["errors"])] == [
        "the id column 'user_id' holds a lone surrogate", "the line is JSON nested too deep"]
