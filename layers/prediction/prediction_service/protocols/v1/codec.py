"""The /v1 codec: the seed documents' bodies to tensors and back.

A forecaster takes one window (`inputs: [[...]]`, or the last `lookback` points of its
dataset) and answers `horizon` values; a classifier takes rows (`inputs`, or `ids` looked
up in its feature table) and answers labels, with `probability` its class probabilities
too; a text model takes `texts` and answers embeddings. What a model is decides which: the
interface of its manifest entry (an ensemble's is its members'). Generic ONNX models speak
the v2 protocol only.
"""

from __future__ import annotations

from collections.abc import Callable, Sequence
from typing import Any

import numpy as np

from prediction_service.catalog.manifest import ClassifierEntry, ForecastEntry, ModelSpec, OnnxEntry, TextEntry
from prediction_service.dataplane.types import Inference, InferRequest, Inputs, Served
from prediction_service.errors import BadInputError, ModelOutputError
from prediction_service.protocols.v1.schemas import MemberPrediction, PredictRequest, PredictResponse, PredictStatus
from prediction_service.runtime import text
from prediction_service.timing import elapsed_ms

LABEL, PROBABILITIES = "label", "probabilities"
_FLOAT32_MAX = float(np.finfo(np.float32).max)


def infer_request(name: str, body: PredictRequest, *, started: float, version: str | None = None,
                  routing_key: str | None = None) -> InferRequest:
    """The data plane's request for `body`: the version it (or `version`, from the query string)
    names, else one chosen by `routing_key` (X-Routing-Key) or, without a key, by its ids."""
    return InferRequest(
        model=name,
        decode=lambda served: decode(body, served),
        version=version or body.version,
        routing_key=routing_key or ids_key(body.ids),
        tables=body.inputs is None and body.texts is None,
        members=body.members,
        started=started,
    )


def example_request(entry: ModelSpec, example_ids: Sequence[int] | None = None) -> PredictRequest | None:
    """A request this codec answers for `entry` (None for a model /v1 does not serve): a forecast from
    its own data, a classification of its first example id, an embedding of one word."""
    interface = entry.interface_entry()
    if isinstance(interface, ForecastEntry):
        return PredictRequest()
    if isinstance(interface, ClassifierEntry) and example_ids:
        return PredictRequest(ids=[example_ids[0]], probability=True)
    if isinstance(interface, TextEntry):
        return PredictRequest(texts=["warm"])
    return None


def ids_key(ids: Sequence[int] | None) -> str | None:
    """The routing key of a request that names ids: one id routes as that user; several route
    together, keyed by all of them in order."""
    return ",".join(str(i) for i in ids) if ids else None


def decode(body: PredictRequest, served: Served) -> Inputs:
    decoder = _DECODERS.get(type(served.interface))
    if decoder is None:
        name = served.entry.name
        raise BadInputError(
            f"model {name!r} is a generic ONNX model: send it named tensors with "
            f"POST /v2/models/{name}/infer (GET /v2/models/{name} lists its inputs)"
        )
    if body.texts is not None and not isinstance(served.interface, TextEntry):
        raise BadInputError(f"model {served.entry.name!r} is a {served.interface.kind} model: "
                            "texts are for text-embedding models")
    return decoder(body, served)


def encode(body: PredictRequest, result: Inference) -> PredictResponse:
    """The answer in the documents' shape, timed from the request's arrival."""
    interface = result.served.interface
    entry = result.served.entry
    fields = _ENCODERS[type(interface)](body, interface, result.arrays, from_caller=body.inputs is not None)
    if result.member_arrays:
        fields["members"] = [
            MemberPrediction(model_name=m.name, model_version=m.version,
                             **_member_fields(body, interface, arrays))
            for m, arrays in zip(result.served.runtime.members, result.member_arrays, strict=True)
        ]
    return PredictResponse(status=PredictStatus.SUCCESS, model_name=entry.name, model_version=entry.version,
                           duration_ms=elapsed_ms(result.started), **fields)


def answer_of(body: PredictRequest, interface: ModelSpec, arrays: list[np.ndarray]) -> Any:
    """A block's output in a playground run: class probabilities when asked for, else the prediction."""
    fields = _ENCODERS[type(interface)](body, interface, arrays, from_caller=body.inputs is not None)
    if body.probability and fields.get("probabilities") is not None:
        return fields["probabilities"]
    return fields.get("prediction", fields.get("embeddings"))


# -- forecasts -----------------------------------------------------------------------------


def _forecast_inputs(body: PredictRequest, served: Served) -> Inputs:
    entry = served.interface
    assert isinstance(entry, ForecastEntry)
    if body.ids is not None or body.probability:
        raise BadInputError("forecast models take `inputs` (one window) or nothing, not ids or probability")
    if body.inputs is not None:
        if len(body.inputs) != 1:
            raise BadInputError(f"a forecast takes one window: inputs must be [[{entry.lookback} values]]")
        window = input_matrix(body.inputs, entry.lookback)
    else:
        series = served.table(entry.dataset).column(entry.dataset.column)
        if len(series) < entry.lookback:
            raise BadInputError(f"the model's dataset has {len(series)} points, fewer than lookback {entry.lookback}")
        window = input_matrix(series[-entry.lookback :][None, :], entry.lookback)
    runtime = served.runtime
    return Inputs({runtime.inputs[0].name: window}, [runtime.outputs[0].name])


def encode_forecast(body: PredictRequest, entry: ModelSpec, arrays: list[np.ndarray], *, from_caller: bool
                    ) -> dict[str, Any]:
    assert isinstance(entry, ForecastEntry)
    values = np.asarray(arrays[0], dtype=np.float64).reshape(-1)
    if values.shape != (entry.horizon,):
        raise ModelOutputError(f"the model returned {values.shape[0]} values, the manifest says {entry.horizon}")
    _require_finite(values, "forecast", from_caller=from_caller)
    return {"lookback": entry.lookback, "prediction": values.tolist()}


# -- classifications ---------------------------------------------------------------------


def _classifier_inputs(body: PredictRequest, served: Served) -> Inputs:
    entry = served.interface
    assert isinstance(entry, ClassifierEntry)
    columns = entry.inputs
    if body.inputs is not None:
        rows = input_matrix(body.inputs, len(columns))
    elif body.ids is None:
        raise BadInputError("a classifier needs `inputs` (rows of features) or `ids`; use POST")
    elif entry.features is None:
        raise BadInputError(f"model {served.entry.name!r} has no feature table to look ids up in; send inputs")
    else:
        table = served.table(entry.features)
        rows = input_matrix(table.rows_for_ids(entry.features.id_column, body.ids, columns), len(columns))
    return Inputs({served.runtime.inputs[0].name: rows}, [LABEL, PROBABILITIES], compare=[LABEL])


def encode_classes(body: PredictRequest, entry: ModelSpec, arrays: list[np.ndarray], *, from_caller: bool
                   ) -> dict[str, Any]:
    assert isinstance(entry, ClassifierEntry)
    labels, probabilities = np.asarray(arrays[0]).astype(int), np.asarray(arrays[1], dtype=np.float64)
    rows = labels.shape[0]
    if probabilities.shape != (rows, len(entry.classes)):
        raise ModelOutputError(f"the model returned probabilities of shape {probabilities.shape}, expected "
                               f"{(rows, len(entry.classes))}")
    _require_finite(probabilities, "class probabilities", from_caller=from_caller)
    if not body.probability:
        return {"prediction": labels.tolist()}
    return {"prediction": labels.tolist(), "probabilities": probabilities.tolist(), "classes": list(entry.classes)}


# -- embeddings --------------------------------------------------------------------------


def _text_inputs(body: PredictRequest, served: Served) -> Inputs:
    if body.texts is None or body.inputs is not None or body.ids is not None or body.probability:
        raise BadInputError(f'model {served.entry.name!r} embeds texts: send {{"texts": ["...", ...]}}')
    return Inputs({text.TEXT: np.asarray(body.texts, dtype=object)},
                  [text.EMBEDDING, text.TOKEN_COUNT, text.TRUNCATED], compare=[text.EMBEDDING])


def encode_embeddings(body: PredictRequest, entry: ModelSpec, arrays: list[np.ndarray], *, from_caller: bool
                      ) -> dict[str, Any]:
    vectors, counts, truncated = arrays
    return {"embeddings": np.asarray(vectors).tolist(), "token_counts": np.asarray(counts).tolist(),
            "truncated": np.asarray(truncated).tolist()}


Decoder = Callable[[PredictRequest, Served], Inputs]
Encoder = Callable[..., dict[str, Any]]
_DECODERS: dict[type, Decoder] = {
    ForecastEntry: _forecast_inputs, ClassifierEntry: _classifier_inputs, TextEntry: _text_inputs,
}
_ENCODERS: dict[type, Encoder] = {
    ForecastEntry: encode_forecast, ClassifierEntry: encode_classes, TextEntry: encode_embeddings,
}
assert OnnxEntry not in _DECODERS  # generic graphs: v2 only


def _member_fields(body: PredictRequest, interface: ModelSpec, arrays: list[np.ndarray]) -> dict[str, Any]:
    """One member's own answer inside an ensemble's: its prediction, and its probabilities when asked."""
    fields = _ENCODERS[type(interface)](body.model_copy(update={"probability": True}), interface, arrays,
                                        from_caller=body.inputs is not None)
    return {"prediction": fields["prediction"],
            "probabilities": fields.get("probabilities") if body.probability else None}


def input_matrix(rows: Sequence[Sequence[float]] | np.ndarray, width: int) -> np.ndarray:
    """Rows as a float32 matrix of `width` columns; refuses ragged, non-finite or too-large values."""
    try:
        matrix = np.asarray(rows, dtype=np.float64)
    except (ValueError, TypeError) as exc:
        raise BadInputError("inputs must be a list of rows of numbers, all of the same length") from exc
    if matrix.ndim != 2 or matrix.shape[0] == 0:
        raise BadInputError("inputs must be a non-empty list of rows, e.g. [[1.0, 2.0, ...]]")
    if matrix.shape[1] != width:
        raise BadInputError(f"each input row must have {width} values, got {matrix.shape[1]}")
    if not np.isfinite(matrix).all():
        raise BadInputError("inputs must be finite numbers (no NaN or Infinity)")
    if np.abs(matrix).max() > _FLOAT32_MAX:
        raise BadInputError("inputs must fit in float32 (absolute value below 3.4e38)")
    return matrix.astype(np.float32)


def _require_finite(values: np.ndarray, what: str, *, from_caller: bool) -> None:
    """A non-finite output is the caller's doing when the caller chose the input (finite values
    so large that the model overflows float32), and the model's fault otherwise."""
    if np.isfinite(values).all():
        return
    if from_caller:
        raise BadInputError(
            f"the model's {what} for these inputs is not finite: the values are too large for it; "
            "send values of the magnitude it was trained on"
        )
    raise ModelOutputError(f"the model's {what} from its own data is not finite")
