"""The Postman collection shipped in postman/ matches the OpenAPI document and carries real example values."""

from __future__ import annotations

import json
import re
from collections.abc import Iterator
from typing import Any

import yaml

from tests.conftest import ROOT

COLLECTION = ROOT / "postman" / "translation-simulator.postman_collection.json"
DOCUMENT = ROOT / "simulator" / "http" / "openapi.yaml"
PLACEHOLDER = re.compile(r"<(string|number|integer|boolean|long|float|double)>")


def requests_of(items: list[dict[str, Any]]) -> Iterator[dict[str, Any]]:
    """Yield every request of a collection, through its folders."""
    for item in items:
        if "item" in item:
            yield from requests_of(item["item"])
        else:
            yield item["request"]


def test_the_collection_has_one_request_per_operation_of_the_document() -> None:
    """Every operation of openapi.yaml is in the collection, and nothing else (regenerate with postman/generate.sh)."""
    collection = json.loads(COLLECTION.read_text(encoding="utf-8"))
    document = yaml.safe_load(DOCUMENT.read_text(encoding="utf-8"))
    operations = {(method.upper(), re.sub(r"\{(\w+)\}", r":\1", path.strip("/")))
                  for path, item in document["paths"].items() for method in item if method != "parameters"}
    shipped = {(r["method"], "/".join(r["url"]["path"])) for r in requests_of(collection["item"])}
    assert shipped == operations


def test_the_collection_uses_example_values_and_the_default_server() -> None:
    """No schema placeholder like <string> is sent; baseUrl is the default server; each submission gets a fresh key."""
    text = COLLECTION.read_text(encoding="utf-8")
    collection = json.loads(text)
    variables = {v["key"]: v["value"] for v in collection["variable"]}
    assert variables["baseUrl"] == "http://127.0.0.1:4777"
    for request in requests_of(collection["item"]):
        sent = [h["value"] for h in request.get("header", []) if not h.get("disabled")]
        sent += [q["value"] for q in request["url"].get("query", []) if not q.get("disabled")]
        sent.append(request.get("body", {}).get("raw", ""))
        assert not any(PLACEHOLDER.search(str(value)) for value in sent), request["url"]["path"]
        for header in request.get("header", []):
            if header["key"] == "Idempotency-Key":
                assert header["value"] == "{{$guid}}" and not header.get("disabled")
