#!/usr/bin/env python3
"""The checkov gate of CI: every failed check on terraform/ must be listed, with a reason, in
terraform/checkov-skips.txt; anything else fails. Reads checkov's JSON report (a file argument).

  scripts/tools/checkov.sh -d terraform --framework terraform -o json > report.json
  python3 scripts/tools/checkov-gate.py report.json terraform/checkov-skips.txt

Prints the counts (passed, failed, accepted by the skip list), every unexplained failure, every skip line
without a reason, and stale skips (listed pairs that no longer fail: reported, not fatal, so a change that fixes
a finding or removes a resource does not break CI; delete the line).
"""
import json
import sys


def load_skips(path):
    skips, errors = {}, []
    with open(path, encoding="utf-8") as f:
        for n, raw in enumerate(f, 1):
            line = raw.strip()
            if not line or line.startswith("#"):
                continue
            parts = line.split(None, 2)
            if len(parts) < 3 or not parts[2].strip():
                errors.append(f"{path}:{n}: a skip needs '<check id> <resource> <reason>': {line}")
                continue
            skips[(parts[0], parts[1])] = parts[2].strip()
    return skips, errors


def main(report_path, skips_path):
    with open(report_path, encoding="utf-8") as f:
        report = json.load(f)
    reports = report if isinstance(report, list) else [report]
    failed, passed = [], 0
    for r in reports:
        passed += r.get("summary", {}).get("passed", 0)
        failed += r.get("results", {}).get("failed_checks", [])
    skips, errors = load_skips(skips_path)
    unexplained, accepted, seen = [], 0, set()
    for c in failed:
        key = (c["check_id"], c["resource"])
        if key in skips:
            accepted += 1
            seen.add(key)
        else:
            unexplained.append(f"{c['check_id']} {c['resource']} ({c['file_path']}): {c['check_name']}")
    stale = sorted(k for k in skips if k not in seen)
    print(f"checkov: {passed} passed, {len(failed)} failed, of which {accepted} accepted by {skips_path}, "
          f"{len(unexplained)} unexplained")
    for s in stale:
        print(f"stale skip (no longer fails, delete the line): {s[0]} {s[1]}")
    for e in errors:
        print(e)
    for u in unexplained:
        print(f"UNEXPLAINED: {u}")
    return 1 if unexplained or errors else 0


if __name__ == "__main__":
    if len(sys.argv) != 3:
        sys.exit("usage: checkov-gate.py <checkov json report> <skip list>")
    sys.exit(main(sys.argv[1], sys.argv[2]))
