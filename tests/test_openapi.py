"""The OpenAPI document: every error answer in the one error shape, the answers each kind of
route can give, the events webhooks receive; and 405s that name every method of a path."""

from __future__ import annotations

import json

import pytest


@pytest.fixture
def document(client) -> dict:
    return client.get("/api/openapi.json").json()


def test_every_error_answer_has_the_error_shape(document) -> None:
    assert "HTTPValidationError" not in json.dumps(document)
    for path, operations in document["paths"].items():
        for method, operation in operations.items():
            for status, answer in operation["responses"].items():
                if status.startswith(("4", "5")):
                    schema = answer["content"]["application/json"]["schema"]
                    assert schema == {"$ref": "#/components/schemas/ErrorBody"}, (method, path, status)
    error = document["components"]["schemas"]["ErrorInfo"]
    assert error["required"] == ["code", "message"] and error["additionalProperties"] is True


@pytest.mark.parametrize(("method", "path", "statuses"), [
    ("post", "/api/v1/generations", {"202", "400", "401", "402", "403", "404", "413", "422", "429", "503"}),
    ("get", "/api/v1/generations/{job_id}", {"200", "401", "404", "422", "503"}),
    ("get", "/api/v1/generations/{job_id}/archive", {"200", "401", "404", "409", "410", "422", "503"}),
    ("post", "/api/v1/auth/login", {"200", "400", "401", "413", "422", "429", "503"}),
    ("post", "/api/v1/api-keys", {"201", "400", "401", "403", "413", "422", "503"}),
    ("delete", "/api/v1/webhooks/{webhook_id}", {"204", "401", "403", "404", "422", "503"}),
    ("post", "/api/v1/billing/checkout", {"200", "400", "401", "403", "413", "422", "502", "503"}),
    ("get", "/healthz", {"200"}),
    ("get", "/readyz", {"200", "503"}),
])
def test_each_route_declares_what_it_can_answer(document, method, path, statuses) -> None:
    assert set(document["paths"][path][method]["responses"]) == statuses


def test_routes_that_need_a_caller_name_both_ways(document) -> None:
    assert document["components"]["securitySchemes"]["apiKey"]["scheme"] == "bearer"
    assert document["paths"]["/api/v1/me"]["get"]["security"] == [{"apiKey": []}, {"session": []}]
    assert document["paths"]["/api/v1/api-keys"]["post"]["security"] == [{"session": []}]
    assert "security" not in document["paths"]["/api/v1/auth/signup"]["post"]


def test_the_events_endpoints_receive_are_documented(document) -> None:
    generation = document["webhooks"]["generation"]["post"]
    assert generation["requestBody"]["content"]["application/json"]["schema"]["$ref"].endswith("/GenerationEvent")
    assert [parameter["name"] for parameter in generation["parameters"]] == ["ImageBooth-Signature"]
    event = document["components"]["schemas"]["FinetuneEvent"]
    assert event["properties"]["data"]["$ref"].endswith("/FinetuneOut")


def test_a_wrong_method_names_every_method_of_the_path(client) -> None:
    response = client.request("PUT", "/api/v1/generations")
    assert response.status_code == 405
    assert response.headers["allow"] == "GET, POST"
    assert response.json()["error"]["code"] == "method_not_allowed"
