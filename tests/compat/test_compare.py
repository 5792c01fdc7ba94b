#!/usr/bin/env python3
"""Unit tests of the harness's normalization and comparison logic (no
daemons): python3 tests/compat/test_compare.py"""

import os
import sys
import unittest

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
import compare  # noqa: E402
import compat  # noqa: E402

PS_DOCKER = """CONTAINER ID   IMAGE                COMMAND       CREATED          STATUS                      PORTS     NAMES
3f4e1c2a9b7d   berth-test/busybox   "sleep 30"    2 seconds ago    Up 1 second                           web
"""
CID = "3f4e1c2a9b7d" + "0" * 52


def norm(r, roots=()):
    return compare.normalize_result(r, compare.IdMap(), roots)


class Normalize(unittest.TestCase):
    def test_ids_times_sizes(self):
        ids = compare.IdMap()
        s = compare.normalize_text(
            "%s created 2024-01-01T10:00:00.123456789Z, 5 minutes ago, Up About a minute, "
            "1.99MB short %s" % (CID, CID[:12]), ids)
        self.assertEqual(s, "<id1> created <time>, <ago>, Up <dur>, <size> short <id1:12>")

    def test_same_id_same_placeholder_across_engines(self):
        a = norm({"stdout": "aaaaaaaaaaaa\n" + "a" * 64})
        b = norm({"stdout": "bbbbbbbbbbbb\n" + "b" * 64})
        self.assertEqual(a, b)

    def test_table_padding_is_ignored(self):
        wide = PS_DOCKER.replace("web", "a-much-longer-name").replace(
            "NAMES", "NAMES").replace("   ", "      ")
        self.assertEqual(norm({"stdout": PS_DOCKER})["stdout"].replace("web", "X"),
                         norm({"stdout": wide})["stdout"].replace("a-much-longer-name", "X"))

    def test_json_key_order_and_volatile_values(self):
        a = norm({"stdout": '[{"Id": "%s", "Created": "2020-01-01T00:00:00Z", "Size": 5}]' % CID})
        b = norm({"stdout": '[{"Size": 9, "Created": "2024-05-05T01:02:03Z", "Id": "%s"}]'
                  % ("f" * 64)})
        self.assertEqual(compare.compare_step(a, b), [])

    def test_engine_roots(self):
        a = norm({"stdout": "/tmp/x/dockerd-data/containers/%s/hosts" % CID},
                 [("/tmp/x/dockerd-data", "<data-root>")])
        b = norm({"stdout": "/tmp/x/berthd-data/containers/%s/hosts" % ("e" * 64)},
                 [("/tmp/x/berthd-data", "<data-root>")])
        self.assertEqual(a, b)

    def test_reference_engine_noise_is_dropped(self):
        r = norm({"stderr": "WARNING: IPv4 forwarding is disabled. Networking will not work.\n"})
        self.assertEqual(r["stderr"], "")


class Compare(unittest.TestCase):
    def test_equal(self):
        r = {"kind": "cli", "rc": 0, "stdout": PS_DOCKER, "stderr": ""}
        self.assertEqual(compare.compare_step(norm(r), norm(dict(r))), [])

    def test_wrong_ps_header_fails_with_readable_diff(self):
        # A deliberately introduced difference: a wrong column header in ps.
        docker = {"kind": "cli", "rc": 0, "stdout": PS_DOCKER, "stderr": ""}
        berth = dict(docker, stdout=PS_DOCKER.replace("CONTAINER ID", "CONTAINER"))
        diff = compare.compare_step(norm(docker), norm(berth))
        self.assertTrue(diff)
        text = "\n".join(diff)
        self.assertIn("--- docker stdout", text)
        self.assertIn("+++ berth stdout", text)
        self.assertIn("-CONTAINER ID  IMAGE", text)
        self.assertIn("+CONTAINER  IMAGE", text)

    def test_scenario_level_failure_names_the_step(self):
        sc = {"name": "ps", "steps": [{"docker": "ps"}]}
        want = [dict(norm({"kind": "cli", "rc": 0, "stdout": PS_DOCKER, "stderr": ""}), step=0)]
        got = [dict(want[0], stdout=want[0]["stdout"].replace("NAMES", "NAME"))]
        diff = compat.compare_scenario(sc, want, got)
        self.assertEqual(diff[0], "step 0 (ps):")

    def test_exit_code_and_json(self):
        a = norm({"kind": "api", "status": 404, "body": '{"message": "No such container: x"}'})
        b = norm({"kind": "api", "status": 409, "body": '{"message": "no such container: x",'
                  ' "extra": 1}'})
        diff = compare.compare_step(a, b)
        self.assertIn("status: docker 404, berth 409", diff)
        self.assertIn("body: $: extra key 'extra' (berth has 1)", diff)
        self.assertIn('body: $.message: docker "No such container: x", berth "no such container: x"',
                      diff)

    def test_ignore_and_keys_only(self):
        a = norm({"body": '{"A": {"B": 1, "C": 2}, "D": "x"}'})
        b = norm({"body": '{"A": {"B": 5, "C": 2}, "D": "y"}'})
        self.assertEqual(compare.compare_step(a, b, {"ignore": ["body.A.B", "body.D"]}), [])
        self.assertEqual(compare.compare_step(a, b, {"keys_only": True}), [])
        c = norm({"body": '{"A": {"B": 5}, "D": "y"}'})
        self.assertIn("body: $.A: key 'C' missing (docker has 2)",
                      compare.compare_step(a, c, {"keys_only": True}))


class Ledger(unittest.TestCase):
    def test_ledger_parses_and_covers_every_scenario(self):
        led = compat.load_ledger()
        names = {s["name"] for s in compat.load_scenarios()}
        self.assertEqual(names - set(led), set(), "scenarios missing from ledger.txt")
        self.assertEqual({k.split("@")[0] for k in led} - names, set(),
                         "ledger entries without a scenario")
        self.assertGreaterEqual(len(names), 40)


if __name__ == "__main__":
    unittest.main()
