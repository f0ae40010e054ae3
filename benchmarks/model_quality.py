"""Model quality of the three forecasters against their baselines and the published figures, in one run.

    uv run python -m benchmarks.model_quality

Failure on AI4I 2020 (five stratified 80/20 splits) and a simulated plant year; consumption on the steel plant
(test: Nov-Dec 2018) and the simulator's energy meters; yield on a simulated plant year. Each task's own script
(benchmarks/model_quality_<task>.py) prints details; this one ends with one JSON line of every figure.
"""

from __future__ import annotations

import json
import time

from benchmarks import model_quality_consumption, model_quality_failure, model_quality_yield

TARGETS = {
    "failure_ai4i": "ROC-AUC >= 0.975 and PR-AUC >= 0.89 (published quick LightGBM, 5 stratified splits)",
    "consumption_steel": "MAE <= 0.75 x seasonal naive; 80 % interval coverage in [0.78, 0.82] on Nov-Dec 2018",
    "every_task": "beats its plain baseline on held-out, later-in-time data",
}


def main() -> None:
    started = time.perf_counter()
    figures = {
        "failure": model_quality_failure.run(),
        "consumption": model_quality_consumption.run(),
        "yield": model_quality_yield.run(),
    }
    figures["seconds"] = round(time.perf_counter() - started, 1)
    figures["targets"] = TARGETS
    print(json.dumps(figures, default=float))


if __name__ == "__main__":
    main()
