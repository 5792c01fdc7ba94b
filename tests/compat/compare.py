"""Normalization and comparison of step results (pure functions, no I/O).

A step result is a dict:
  {"kind": "cli", "rc": int, "stdout": str|json, "stderr": str}
  {"kind": "api", "status": int, "content_type": str, "body": str|json}
Normalization replaces what legitimately differs between two engines (IDs,
timestamps, relative times, sizes, the engines' own directories) with stable
placeholders, so that the normalized results of berthd and dockerd can be
compared for equality.
"""

import difflib
import json
import re

HEX64 = re.compile(r"(?<![0-9a-f])[0-9a-f]{64}(?![0-9a-f])")
HEX12 = re.compile(r"(?<![0-9a-zA-Z_])[0-9a-f]{12}(?![0-9a-zA-Z_])")
TIME_RFC3339 = re.compile(
    r"\d{4}-\d{2}-\d{2}T\d{2}:\d{2}:\d{2}(?:\.\d+)?(?:Z|[+-]\d{2}:\d{2})")
TIME_GO = re.compile(
    r"\d{4}-\d{2}-\d{2} \d{2}:\d{2}:\d{2}(?:\.\d+)?(?: [+-]\d{4})?(?: [A-Z]{2,5})?")
_DUR = (r"(?:Less than a second|About a minute|About an hour|"
        r"\d+ (?:second|minute|hour|day|week|month|year)s?|"
        r"an? (?:second|minute|hour|day|week|month|year))")
AGO = re.compile(_DUR + r" ago")
UP = re.compile(r"\bUp " + _DUR)
SIZE = re.compile(r"(?<![\w.])\d+(?:\.\d+)?\s?(?:B|kB|KB|MB|GB|TB|KiB|MiB|GiB)(?![\w])")
ZERO_TIME = "0001-01-01T00:00:00Z"

# Lines that only the reference engine prints because of how the harness
# starts it (--ip-forward=false keeps the host's sysctls untouched).
ENV_NOISE_LINES = {
    "WARNING: IPv4 forwarding is disabled. Networking will not work.",
    "IPv4 forwarding is disabled. Networking will not work.",
}

# JSON keys whose values are volatile by nature: compared for presence and
# type only.
VOLATILE_KEYS = {"Created", "Size", "VirtualSize", "SharedSize", "SizeRw", "SizeRootFs",
                 "Pid", "StartedAt", "FinishedAt", "LastTagTime", "SystemTime",
                 "time", "timeNano", "Time", "BuildTime", "KernelVersion"}


class IdMap:
    """Maps hex IDs to placeholders in order of first appearance, so that
    the same container/image keeps the same placeholder across the steps of
    a scenario, and a 12-char short ID maps to its full ID's placeholder."""

    def __init__(self):
        self.ids = []  # list of known hex strings (longest seen)

    def _index(self, h):
        for i, known in enumerate(self.ids):
            if known.startswith(h) or h.startswith(known):
                if len(h) > len(known):
                    self.ids[i] = h
                return i + 1
        self.ids.append(h)
        return len(self.ids)

    def full(self, m):
        return "<id%d>" % self._index(m.group(0))

    def short(self, m):
        return "<id%d:12>" % self._index(m.group(0))


def normalize_text(s, ids, roots=()):
    if s is None:
        return s
    for root, name in roots:
        if root:
            s = s.replace(root, name)
    s = "\n".join(l for l in s.split("\n") if l.strip() not in ENV_NOISE_LINES)
    s = HEX64.sub(ids.full, s)
    s = HEX12.sub(ids.short, s)
    s = s.replace(ZERO_TIME, "<zero-time>")
    s = TIME_RFC3339.sub("<time>", s)
    s = TIME_GO.sub("<time>", s)
    s = s.replace("<zero-time>", ZERO_TIME)
    s = AGO.sub("<ago>", s)
    s = UP.sub("Up <dur>", s)
    s = SIZE.sub("<size>", s)
    # Table output: the docker CLI pads columns to the widest cell, so a
    # normalized cell changes the padding. Compare cells, not padding.
    lines = [re.sub(r" {2,}", "  ", l).rstrip() for l in s.split("\n")]
    return "\n".join(lines)


def normalize_json(v, ids, roots=(), key=None):
    if isinstance(v, dict):
        # Sorted, so that IDs get the same placeholders whatever the key
        # order of each engine's JSON.
        return {k: normalize_json(v[k], ids, roots, k) for k in sorted(v)}
    if isinstance(v, list):
        if key == "Warnings":
            v = [w for w in v if w not in ENV_NOISE_LINES]
        return [normalize_json(x, ids, roots, key) for x in v]
    if key in VOLATILE_KEYS and v is not None and not (isinstance(v, str) and v in ("", ZERO_TIME)):
        return "<%s:%s>" % (key, type(v).__name__)
    if isinstance(v, str):
        s = normalize_text(v, ids, roots)
        return s
    return v


def try_json(s):
    """Parses s as JSON, or as a stream of JSON documents (one per line).
    Returns (True, value) or (False, s)."""
    if not isinstance(s, str):
        return False, s
    t = s.strip()
    if not t or t[0] not in "[{":
        return False, s
    try:
        return True, json.loads(t)
    except ValueError:
        pass
    try:
        return True, {"<json-stream>": [json.loads(l) for l in t.splitlines() if l.strip()]}
    except ValueError:
        return False, s


def normalize_result(r, ids, roots=()):
    out = dict(r)
    for f in ("stdout", "stderr", "body"):
        if f not in out:
            continue
        v = out[f]
        if isinstance(v, (dict, list)):
            out[f] = normalize_json(v, ids, roots)
        elif isinstance(v, str):
            ok, j = try_json(v) if r.get("json", True) else (False, v)
            out[f] = normalize_json(j, ids, roots) if ok else normalize_text(v, ids, roots)
    out.pop("json", None)
    return out


def _path_matches(path, patterns):
    for p in patterns:
        if p == "":
            return True
        pp = p.split(".")
        if len(pp) > len(path):
            continue
        if all(a == "*" or a == b for a, b in zip(pp, path)):
            return True
    return False


def diff_json(want, got, path=(), ignore=(), keys_only=False):
    """Structural diff: key sets everywhere, values unless ignored or
    keys_only. Returns a list of human-readable lines."""
    out = []
    where = "$" + "".join("[%s]" % p if p.isdigit() else "." + p for p in path)
    if _path_matches(list(path), ignore):
        return out
    if isinstance(want, dict) and isinstance(got, dict):
        for k in sorted(set(want) - set(got)):
            out.append("%s: key %r missing (docker has %s)" % (where, k, _short(want[k])))
        for k in sorted(set(got) - set(want)):
            out.append("%s: extra key %r (berth has %s)" % (where, k, _short(got[k])))
        for k in sorted(set(want) & set(got)):
            out += diff_json(want[k], got[k], path + (k,), ignore, keys_only)
        return out
    if isinstance(want, list) and isinstance(got, list):
        if len(want) != len(got) and not keys_only:
            out.append("%s: list length docker %d, berth %d: docker %s, berth %s"
                       % (where, len(want), len(got), _short(want), _short(got)))
            return out
        for i, (a, b) in enumerate(zip(want, got)):
            out += diff_json(a, b, path + (str(i),), ignore, keys_only)
        return out
    if keys_only:
        if type(want) != type(got) and want is not None and got is not None:
            out.append("%s: type docker %s, berth %s" % (where, type(want).__name__,
                                                          type(got).__name__))
        return out
    if want != got:
        out.append("%s: docker %s, berth %s" % (where, _short(want), _short(got)))
    return out


def _short(v, n=120):
    s = json.dumps(v, sort_keys=True)
    return s if len(s) <= n else s[:n] + "…"


def diff_text(want, got, label):
    if want == got:
        return []
    lines = list(difflib.unified_diff(
        (want or "").split("\n"), (got or "").split("\n"),
        "docker " + label, "berth " + label, lineterm="", n=2))
    return lines


def compare_step(want, got, opts=None):
    """Compares one normalized step result of docker (want) with berth's
    (got). opts: {"ignore": [json paths], "keys_only": bool,
    "compare": [fields]}. Returns a list of diff lines (empty = equal)."""
    opts = opts or {}
    ignore = opts.get("ignore", [])
    keys_only = opts.get("keys_only", False)
    fields = opts.get("compare") or [f for f in ("rc", "status", "content_type", "stdout",
                                                 "stderr", "body") if f in want or f in got]
    out = []
    for f in fields:
        a, b = want.get(f), got.get(f)
        if isinstance(a, (dict, list)) and isinstance(b, (dict, list)):
            ign = [p[len(f) + 1:] for p in ignore if p.startswith(f + ".")]
            ign += ["" for p in ignore if p == f]
            out += ["%s: %s" % (f, l) for l in diff_json(a, b, ignore=ign, keys_only=keys_only)]
        elif isinstance(a, str) and isinstance(b, str):
            out += diff_text(a, b, f)
        elif a != b:
            out.append("%s: docker %s, berth %s" % (f, _short(a), _short(b)))
    return out
