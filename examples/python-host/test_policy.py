"""The host's re-check agrees with the Rust policy crate on every shared case
(tests/fixtures/policy-cases.json). Run: python3 -m unittest test_policy (from this directory)."""

import json
import unittest
from pathlib import Path

import policy

CASES = json.loads((Path(__file__).resolve().parents[2] / "tests" / "fixtures" / "policy-cases.json").read_text())


def verdict(check, *args):
    try:
        return check(*args)
    except policy.Violation as violation:
        return str(violation)


class SharedCases(unittest.TestCase):
    def test_relative_paths(self):
        for case in CASES["relative"]:
            with self.subTest(path=case["path"]):
                self.assertEqual(verdict(policy.validate_relative, case["path"]), case.get("violation", case.get("components")))

    def test_symlink_targets(self):
        for case in CASES["symlink"]:
            with self.subTest(link=case["link"], target=case["target"]):
                link = policy.validate_relative(case["link"])
                self.assertEqual(verdict(policy.validate_symlink_target, link, case["target"]), case.get("violation"))

    def test_modes(self):
        for case in CASES["mode"]:
            with self.subTest(case=case):
                self.assertEqual(policy.sanitize_mode(int(case["mode"], 8), case["directory"]), int(case["sanitized"], 8))


if __name__ == "__main__":
    unittest.main()
