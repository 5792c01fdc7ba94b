"""Validation of Engine API responses against moby's Swagger definitions.

The spec files live outside the repo (../shared/spec/engine-api/vX.YY.yaml);
they are read from there, never copied. Swagger 2.0's `x-nullable: true` is
turned into "or null" before validating with JSON Schema draft 4.
"""

import os
import re


def available(spec_dir):
    try:
        import yaml  # noqa: F401
        import jsonschema  # noqa: F401
    except ImportError as e:
        return False, "python module missing (%s; apt-get install python3-yaml python3-jsonschema)" % e.name
    if not os.path.isdir(spec_dir):
        return False, "%s not found" % spec_dir
    return True, ""


def _nullable(node):
    if isinstance(node, list):
        return [_nullable(x) for x in node]
    if not isinstance(node, dict):
        return node
    node = {k: _nullable(v) for k, v in node.items()}
    if node.get("x-nullable"):
        if "$ref" in node:
            return {"anyOf": [{"$ref": node["$ref"]}, {"type": "null"}]}
        t = node.get("type")
        if isinstance(t, str):
            node["type"] = [t, "null"]
            if "enum" in node:
                node["enum"] = list(node["enum"]) + [None]
    return node


class Spec:
    def __init__(self, path):
        import yaml
        loader = getattr(yaml, "CSafeLoader", yaml.SafeLoader)
        with open(path) as f:
            self.doc = yaml.load(f, Loader=loader)
        self.name = os.path.basename(path)
        self.definitions = _nullable(self.doc.get("definitions", {}))
        self.routes = []
        for p, ops in self.doc.get("paths", {}).items():
            rx = "^" + re.sub(r"\\\{[^}]+\\\}", "[^/]+", re.escape(p)) + "$"
            self.routes.append((re.compile(rx), p, ops))
        # Literal paths first (/containers/json before /containers/{id}).
        self.routes.sort(key=lambda r: r[1].count("{"))

    def schema_for(self, method, path, status):
        path = path.split("?", 1)[0]
        for rx, _, ops in self.routes:
            if rx.match(path) and method.lower() in ops:
                resp = ops[method.lower()].get("responses", {})
                r = resp.get(str(status)) or resp.get(status)
                if r and "schema" in r:
                    s = _nullable(r["schema"])
                    return dict(s, definitions=self.definitions)
                return None
        return None

    def validate(self, method, path, status, body):
        """Returns a list of violation strings (empty when valid or when the
        spec has no schema for this response)."""
        import jsonschema
        s = self.schema_for(method, path, status)
        if s is None:
            return []
        v = jsonschema.Draft4Validator(s)
        out = []
        for e in sorted(v.iter_errors(body), key=lambda e: list(e.absolute_path)):
            where = "$" + "".join("[%d]" % p if isinstance(p, int) else "." + str(p)
                                  for p in e.absolute_path)
            msg = e.message
            if len(msg) > 200:
                msg = msg[:200] + "…"
            out.append("%s %s: %s" % (self.name, where, msg))
        return out
