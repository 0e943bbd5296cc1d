"""A policy for the CLI resume test: one better submission, one long output, then plain commands."""

from __future__ import annotations

from typing import Any

PICK = ("python3 -c \"import json,os; rs=[json.loads(l) for l in open(os.environ['POOL']+'/pool.jsonl')]; "
        "open('{f}','w').write('\\n'.join([r['id'] for r in rs if r['quality_hint']=='good' "
        "and r['id']!='leak01'][:{n}]))\"")


class ResumeAgent:
    def reset(self, obs: dict[str, Any], info: dict[str, Any]) -> None:
        self.plan = iter([PICK.format(n=10, f="c.txt") + " && submit c.txt --note third",
                          "python3 -c \"print('x' * 5000)\""])

    def act(self, obs: dict[str, Any], info: dict[str, Any]) -> str:
        return next(self.plan, "echo waiting")
