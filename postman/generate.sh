#!/usr/bin/env bash
# Regenerate the Postman collection from the OpenAPI document (needs Node.js and npm; run from the checkout).
# openapi-to-postmanv2 fills every value from the document's examples; then the collection's variables are set
# to the server `python server.py` starts by default and a placeholder admin token, and Idempotency-Key to
# Postman's {{$guid}}, a fresh key on every send.
set -euo pipefail
cd "$(dirname "$0")/.."
out=postman/translation-simulator.postman_collection.json
npx --yes -p openapi-to-postmanv2@6.3.3 openapi2postmanv2 -s simulator/http/openapi.yaml -o "$out" -p \
    -O folderStrategy=Tags,parametersResolution=Example,enableOptionalParameters=false
python3 - "$out" <<'PY'
import json, sys
path = sys.argv[1]
collection = json.load(open(path, encoding="utf-8"))
def requests(items):
    for item in items:
        yield from requests(item["item"]) if "item" in item else [item["request"]]
for request in requests(collection["item"]):
    for header in request.get("header", []):
        if header["key"] == "Idempotency-Key":
            header["value"], header["disabled"] = "{{$guid}}", False
collection["variable"] = [
    {"key": "baseUrl", "value": "http://127.0.0.1:4777", "type": "string"},
    {"key": "bearerToken", "value": "s3cret", "type": "string", "description": "the server's ADMIN_TOKEN"},
]
with open(path, "w", encoding="utf-8") as f:
    json.dump(collection, f, indent=2, ensure_ascii=False)
    f.write("\n")
PY
echo "wrote $out"
