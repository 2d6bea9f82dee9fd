"""The OpenAPI document the docs function serves: every route, its auth, its stage, and the
published batch contract (seeds' `POST /v1/predict` page, tests/contract/batch_predict.schema.json)."""

from __future__ import annotations

import base64
import hashlib
import importlib.util
import json
import re
import sys
from pathlib import Path
from typing import Any

import jsonschema
import pytest
from generate_events import PLAYGROUND_RUN
from local_api import load_template, template_routes
from support import ROOT, lambda_context, load_event, load_function, shipped_model_names

SEED = json.loads((ROOT / "tests/contract/batch_predict.schema.json").read_text())
PUBLIC_ROUTES = {("GET", "/openapi.json"), ("GET", "/docs"), ("GET", "/docs/{asset}"), ("GET", "/playground")}
HEALTH_ROUTES = {("GET", "/v2/health/live"), ("GET", "/v2/health/ready")}  # documented, and public


@pytest.fixture(scope="module")
def docs() -> Any:
    return load_function("docs")


def invoke(function: Any, event_file: str) -> dict[str, Any]:
    return function.handler(load_event(ROOT / "events" / event_file), lambda_context())


@pytest.fixture(scope="module")
def document(docs: Any) -> dict[str, Any]:
    result = invoke(docs, "docs_openapi_document.json")
    assert result["statusCode"] == 200
    return json.loads(result["body"])


def component(document: dict[str, Any], name: str) -> dict[str, Any]:
    """A schema of the document as a standalone JSON schema (its `$ref`s resolve inside it)."""
    return {"$ref": f"#/components/schemas/{name}", "components": document["components"]}


def test_the_document_describes_exactly_the_api_routes_of_the_template(document: dict[str, Any]) -> None:
    documented = {(method.upper(), path) for path, item in document["paths"].items() for method in item}
    routes = {(r.method, r.path) for r in template_routes()}
    assert documented == routes - PUBLIC_ROUTES
    assert routes >= PUBLIC_ROUTES


def test_only_the_documentation_routes_and_the_health_probes_skip_the_authorizer() -> None:
    resources = load_template()["Resources"]
    public = set()
    for resource in resources.values():
        for event in resource.get("Properties", {}).get("Events", {}).values():
            if event["Type"] == "HttpApi" and event["Properties"].get("Auth", {}).get("Authorizer") == "NONE":
                public.add((event["Properties"]["Method"], event["Properties"]["Path"]))
    assert public == PUBLIC_ROUTES | HEALTH_ROUTES


def test_every_operation_asks_for_a_bearer_token_and_documents_its_errors(document: dict[str, Any]) -> None:
    assert document["components"]["securitySchemes"]["bearerAuth"] == {
        "type": "http", "scheme": "bearer", "description": "an API token (scripts/new_token.py)"
    }
    assert document["security"] == [{"bearerAuth": []}]
    for path, item in document["paths"].items():
        for method, operation in item.items():
            responses = operation["responses"]
            if (method.upper(), path) in HEALTH_ROUTES:
                assert operation["security"] == [] and "401" not in responses, path
                continue
            assert {"200", "400", "401", "500"} <= set(responses), (method, path)
            assert "422" not in responses, "validation errors are answered with 400"
            # a run names a model by its block and version, an embeddings request in its body
            names_a_model = "{name}" in path or "{model}" in path or path in ("/api/runs", "/openai/v1/embeddings")
            assert ("404" in responses) == names_a_model, "only routes that name a model answer 404"


def test_the_batch_operation_keeps_the_published_contract(document: dict[str, Any]) -> None:
    operation = document["paths"]["/v1/predict"]["post"]
    ours = document["components"]["schemas"]
    request_ref = operation["requestBody"]["content"]["application/json"]["schema"]["$ref"]
    assert request_ref.endswith("/BatchPredictRequest")
    # what the published page requires, ours requires too
    assert set(SEED["response"]["required"]) <= set(ours["BatchPredictResponse"]["required"])
    published_item = SEED["response"]["properties"]["predictions"]["items"]
    assert set(published_item["required"]) <= set(ours["PredictResponse"]["required"])
    assert set(published_item["properties"]) <= set(ours["PredictResponse"]["properties"])
    assert set(published_item["properties"]["status"]["enum"]) == set(ours["PredictStatus"]["enum"])
    assert "model_name" in ours["BatchItem"]["required"]
    # the published request example is a valid request for ours
    example = {"predictions": [{"model_name": "drive_stats_a"}, {"model_name": "drive_stats_b"}]}
    jsonschema.validate(example, SEED["request"])
    jsonschema.validate(example, component(document, "BatchPredictRequest"))


def test_real_answers_validate_against_both_the_document_and_the_published_schema(
    s3: Any, document: dict[str, Any]
) -> None:
    batch, predict = load_function("batch"), load_function("models")
    for event_file in ("batch_drive_stats.json", "batch_mixed_statuses.json"):
        body = json.loads(invoke(batch, event_file)["body"])
        jsonschema.validate(body, SEED["response"])
        jsonschema.validate(body, component(document, "BatchPredictResponse"))
    answers = {
        "models_describe_drive_stats_a.json": "ModelDetail",
        "models_describe_user_churn.json": "ModelDetail",
        "models_list.json": "ModelList",
        "models_predict_ids_probability.json": "PredictResponse",
        "models_predict_unknown_model.json": "ErrorBody",
        "models_predict_without_token.json": "ErrorBody",
    }
    for event_file, name in answers.items():
        jsonschema.validate(json.loads(invoke(predict, event_file)["body"]), component(document, name))
    jsonschema.validate(PLAYGROUND_RUN, component(document, "RunRequest"))


def test_behind_a_named_stage_the_document_and_the_docs_page_keep_the_stage(docs: Any) -> None:
    document = json.loads(invoke(docs, "docs_openapi_document_named_stage.json")["body"])
    assert document["servers"] == [{"url": "/prod"}]
    event = load_event(ROOT / "events" / "docs_page.json")
    event["rawPath"] = event["requestContext"]["http"]["path"] = "/prod/docs"
    event["requestContext"]["stage"] = "prod"
    page = docs.handler(event, lambda_context())["body"]
    assert "url: '/prod/openapi.json'" in page
    assert "url: '/openapi.json'" in invoke(docs, "docs_page.json")["body"]


def test_route_functions_answer_under_a_named_stage(s3: Any) -> None:
    result = invoke(load_function("models"), "models_list_named_stage.json")
    assert result["statusCode"] == 200
    assert {m["name"] for m in json.loads(result["body"])["models"]} == shipped_model_names()


def test_the_playground_page_is_locked_down_by_its_content_security_policy(docs: Any) -> None:
    result = invoke(docs, "docs_playground_page.json")
    policy = result["headers"]["content-security-policy"]
    assert "default-src 'none'" in policy and "connect-src 'self'" in policy and "frame-ancestors 'none'" in policy
    assert "'unsafe-inline'" not in policy and "http" not in policy
    assert policy.count("'sha256-") == 2  # its one script and one style, by hash
    assert result["headers"]["x-content-type-options"] == "nosniff"


SWAGGER_UI_TYPES = {"swagger-ui-bundle.js": "text/javascript", "swagger-ui.css": "text/css"}


def get(docs: Any, path: str, stage: str = "$default") -> dict[str, Any]:
    """The docs function's answer to `GET path` (a raw path, as API Gateway passes it)."""
    event = load_event(ROOT / "events" / "docs_page.json")
    event["rawPath"] = event["requestContext"]["http"]["path"] = path
    event["requestContext"]["stage"] = stage
    return docs.handler(event, lambda_context())


def swagger_ui_file(name: str) -> bytes:
    """The file as the pinned swagger-ui-py package ships it (the package is not imported)."""
    spec = importlib.util.find_spec("swagger_ui")
    assert spec is not None and spec.submodule_search_locations
    return (Path(next(iter(spec.submodule_search_locations))) / "static" / name).read_bytes()


def test_the_docs_page_loads_swagger_ui_from_its_own_origin_only(docs: Any) -> None:
    for stage, root in (("$default", ""), ("prod", "/prod")):
        result = get(docs, f"{root}/docs", stage)
        assert result["statusCode"] == 200
        page = result["body"]
        urls = re.findall(r"<(?:script|link)\b[^>]*?\b(?:src|href)=\"([^\"]*)\"", page)
        assert sorted(u.split("?")[0] for u in urls) == sorted(
            ["data:,", f"{root}/docs/swagger-ui.css", f"{root}/docs/swagger-ui-bundle.js"]
        )
        assert "http" not in " ".join(urls) and "cdn." not in page and "//" not in " ".join(urls)
        for name in SWAGGER_UI_TYPES:  # Subresource Integrity of the very bytes served
            digest = base64.b64encode(hashlib.sha384(swagger_ui_file(name)).digest()).decode()
            assert f'integrity="sha384-{digest}"' in page
        assert f"url: '{root}/openapi.json'" in page
        assert "swagger_ui" not in sys.modules, "the package's Python code (and its Jinja2) is not loaded"


def test_the_docs_page_csp_allows_only_its_own_origin_and_its_one_inline_script(docs: Any) -> None:
    result = get(docs, "/docs")
    policy = result["headers"]["content-security-policy"]
    directives = dict(d.strip().split(" ", 1) for d in policy.split(";"))
    assert directives["default-src"] == "'none'"
    assert directives["connect-src"] == "'self'" and directives["img-src"] == "'self' data:"
    assert directives["frame-ancestors"] == directives["base-uri"] == directives["form-action"] == "'none'"
    (inline,) = re.findall(r"<script>(.*?)</script>", result["body"], flags=re.DOTALL)
    digest = base64.b64encode(hashlib.sha256(inline.encode()).digest()).decode()
    assert directives["script-src"] == f"'self' 'sha256-{digest}'"
    assert directives["style-src"] == "'self'"
    assert "http" not in policy and "*" not in policy and "'unsafe-" not in policy
    assert result["headers"]["x-content-type-options"] == "nosniff"


def test_swagger_ui_files_are_served_as_the_pinned_package_ships_them(docs: Any) -> None:
    for name, content_type in SWAGGER_UI_TYPES.items():
        for stage, root in (("$default", ""), ("prod", "/prod")):
            result = get(docs, f"{root}/docs/{name}", stage)
            assert result["statusCode"] == 200
            assert result["headers"]["content-type"].split(";")[0] == content_type
            assert result["headers"]["x-content-type-options"] == "nosniff"
            assert "immutable" in result["headers"]["cache-control"]
            body = base64.b64decode(result["body"]) if result["isBase64Encoded"] else result["body"].encode()
            assert body == swagger_ui_file(name)
    assert invoke(docs, "docs_swagger_ui_asset.json")["statusCode"] == 200


@pytest.mark.parametrize(
    "path",
    [
        "/docs/../app.py",
        "/docs/..%2Fapp.py",
        "/docs/%2e%2e",
        "/docs/%2e%2e%2fapp.py",
        "/docs/swagger-ui-bundle.js.map",
        "/docs/swagger-ui.css.map",
        "/docs/swagger-editor-bundle.js",
        "/docs/index.css",
        "/docs/LICENSE",
        "/docs/swagger-ui-bundle.js%00",
        "/docs/SWAGGER-UI.CSS",
    ],
)
def test_any_other_docs_file_is_not_found_in_the_error_body(docs: Any, path: str) -> None:
    result = get(docs, path)
    assert result["statusCode"] == 404
    body = json.loads(result["body"])
    assert body["status"] == "BadRequest" and body["error_message"].startswith("no route GET ")


def test_the_v2_routes_answer_the_protocols_error_body_and_take_its_request(document: dict[str, Any]) -> None:
    infer = document["paths"]["/v2/models/{name}/infer"]["post"]
    content = infer["requestBody"]["content"]
    assert content["application/json"]["schema"] == {"$ref": "#/components/schemas/InferenceRequest"}
    assert "application/octet-stream" in content
    example = {"id": "1", "inputs": [{"name": "X", "shape": [1, 4], "datatype": "FP32", "data": [1, 2, 3, 4]}]}
    jsonschema.validate(example, component(document, "InferenceRequest"))
    for path, item in document["paths"].items():
        for operation in item.values():
            for code, response in operation["responses"].items():
                if path.startswith("/v2") and code >= "400" and code != "503":
                    schema = response["content"]["application/json"]["schema"]
                    assert schema == {"$ref": "#/components/schemas/ProtocolError"}, (path, code)
