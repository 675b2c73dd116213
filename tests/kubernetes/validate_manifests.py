#!/usr/bin/env python3
"""Validates Kubernetes manifests offline against the vendored OpenAPI
schemas (tests/kubernetes/schemas.json, see extract_schemas.py), strictly:
an unknown field is an error (as `kubectl apply --validate=strict` and
kubeconform -strict), as are a wrong type, a missing required field and a
kind/apiVersion that is not the schema's. IntOrString and Quantity accept an
integer or a string, as the API server does.

  python3 tests/kubernetes/validate_manifests.py deploy/kubernetes/*.yaml

Library use: errors_in(document) -> list of "path: message" strings."""

import copy
import json
import os
import sys

import jsonschema
import yaml

HERE = os.path.dirname(os.path.abspath(__file__))
INT_OR_STRING = {"oneOf": [{"type": "integer"}, {"type": "string"}]}


def _strict(defs):
    """Swagger 2.0 definitions → draft-4 schemas that refuse unknown fields."""
    out = {}
    for name, d in defs.items():
        d = copy.deepcopy(d)
        if d.get("format") in ("int-or-string",) or name.endswith("resource.Quantity"):
            out[name] = INT_OR_STRING
            continue

        def close(o):
            if isinstance(o, dict):
                if o.get("type") == "object" and "properties" in o and \
                        "additionalProperties" not in o:
                    o["additionalProperties"] = False
                for v in o.values():
                    close(v)
            elif isinstance(o, list):
                for v in o:
                    close(v)
        close(d)
        out[name] = d
    return out


def _load():
    with open(os.path.join(HERE, "schemas.json")) as f:
        doc = json.load(f)
    defs = _strict(doc["definitions"])
    kinds = {}
    for name in doc["roots"]:
        for gvk in doc["definitions"][name].get("x-kubernetes-group-version-kind", []):
            api = gvk["version"] if not gvk["group"] else gvk["group"] + "/" + gvk["version"]
            kinds[(api, gvk["kind"])] = name
    return defs, kinds


DEFS, KINDS = _load()


def errors_in(doc):
    """Every schema error of one manifest, as 'path: message'."""
    if not isinstance(doc, dict):
        return ["(top level): expected a mapping"]
    key = (doc.get("apiVersion"), doc.get("kind"))
    name = KINDS.get(key)
    if not name:
        return ["(top level): apiVersion/kind %s/%s is none of %s" %
                (key[0], key[1], sorted("%s %s" % k for k in KINDS))]
    schema = {"$ref": "#/definitions/" + name, "definitions": DEFS}
    v = jsonschema.Draft4Validator(schema)
    out = []
    for e in sorted(v.iter_errors(doc), key=lambda e: list(map(str, e.absolute_path))):
        path = ".".join(str(p) for p in e.absolute_path) or "(top level)"
        out.append("%s: %s" % (path, e.message))
    return out


def load_all(path):
    with open(path) as f:
        return [d for d in yaml.safe_load_all(f) if d is not None]


def main(paths):
    bad = 0
    for path in paths:
        for i, doc in enumerate(load_all(path)):
            errs = errors_in(doc)
            what = "%s[%d] %s/%s" % (path, i, doc.get("kind"), doc.get("metadata", {}).get("name"))
            if errs:
                bad += 1
                print("%s: INVALID" % what)
                for e in errs:
                    print("  " + e)
            else:
                print("%s: ok" % what)
    return 1 if bad else 0


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
