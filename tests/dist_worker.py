"""Run by ``torchrun`` in tests/test_distributed.py: several synthgate commands in one launch.

One launch pays the interpreter and torch start-up once for every scenario (the machine has 2 shared cores).
Usage: ``torchrun --standalone --nproc-per-node 2 tests/dist_worker.py PLAN.json``. The plan lists commands
(argv lists); each rank writes ``rank-R.json`` next to the plan with every command's exit code and what the
error-agreement check raised.
"""

from __future__ import annotations

import json
import sys
from pathlib import Path


def _agreement() -> dict[str, object]:
    """Rank 1 fails inside gather_checked; every rank must raise, none may hang."""
    from synthgate import distributed
    from synthgate.errors import InputError

    def fail_on_rank_1() -> int:
        if distributed.rank() == 1:
            raise InputError("rank one's input is bad")
        return distributed.rank()

    try:
        distributed.gather_checked(fail_on_rank_1)
    except distributed.RankFailed as e:
        return {"raised": "RankFailed", "code": int(e.exit_code), "message": str(e)}
    except InputError as e:
        return {"raised": "InputError", "code": int(e.exit_code), "message": str(e)}
    return {"raised": None}


def main(plan_path: str) -> None:
    from synthgate import distributed
    from synthgate.cli import app

    plan = json.loads(Path(plan_path).read_text())
    launch = distributed.read_launch()
    distributed.init(launch)
    report: dict[str, object] = {"rank": launch.rank, "world": launch.world_size, "codes": []}
    for argv in plan["commands"]:
        code = app(argv, prog_name="synthgate", standalone_mode=False)
        report["codes"].append(0 if code is None else int(code))  # type: ignore[union-attr]
    report["gathered"] = distributed.gather_checked(lambda: distributed.rank() * 10)
    report["agreement"] = _agreement()
    (Path(plan_path).parent / f"rank-{launch.rank}.json").write_text(json.dumps(report))
    distributed.shutdown()  # what the CLI does at exit, here inside the test's view


if __name__ == "__main__":
    main(sys.argv[1])
