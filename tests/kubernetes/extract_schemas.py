#!/usr/bin/env python3
"""Writes the JSON schemas that tests/integration/test_kubernetes.py checks
deploy/kubernetes/ against: the definitions of Kubernetes' own OpenAPI
(swagger 2.0) document that a Deployment, a Service and a ConfigMap reach,
descriptions dropped. Run it again to move to another Kubernetes release:

  python3 tests/kubernetes/extract_schemas.py swagger.json > tests/kubernetes/schemas.json

The document is api/openapi-spec/swagger.json of kubernetes/kubernetes (also
kept as kubernetes/swagger.json.unprocessed in kubernetes-client/python).
The vendored file came from release-1.36 (kubernetes-client/python 024658493)."""

import json
import sys

ROOTS = ["io.k8s.api.apps.v1.Deployment", "io.k8s.api.core.v1.Service",
         "io.k8s.api.core.v1.ConfigMap"]


def strip(o):
    if isinstance(o, dict):
        return {k: strip(v) for k, v in o.items() if k != "description"}
    if isinstance(o, list):
        return [strip(x) for x in o]
    return o


def main(path):
    with open(path) as f:
        doc = json.load(f)
    defs = doc["definitions"]
    seen = set()

    def walk(o):
        if isinstance(o, dict):
            for k, v in o.items():
                if k == "$ref":
                    name = v.rsplit("/", 1)[1]
                    if name not in seen:
                        seen.add(name)
                        walk(defs[name])
                else:
                    walk(v)
        elif isinstance(o, list):
            for x in o:
                walk(x)

    for r in ROOTS:
        seen.add(r)
        walk(defs[r])
    out = {"source": "Kubernetes OpenAPI v2, " + doc.get("info", {}).get("title", "") +
           " (release-1.36)", "roots": ROOTS,
           "definitions": {k: strip(defs[k]) for k in sorted(seen)}}
    json.dump(out, sys.stdout, sort_keys=True, indent=0, separators=(",", ":"))
    sys.stdout.write("\n")


if __name__ == "__main__":
    main(sys.argv[1])
