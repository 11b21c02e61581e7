"""``python tests/models/plan_server.py ARGS``: llama-cpp-python's own OpenAI-compatible server (``python -m
llama_cpp.server ARGS``) loading its model under this CPU's load plan, as the product's model host does, so the
loopback-server tests run on AMX machines too (a plain ``llama_cpp.server`` takes the crashing AMX path there)."""

from __future__ import annotations

import sys

from llama_cpp.server.__main__ import main

from spacetime.adapters.llm.host_main import current_plan, model_params

if __name__ == "__main__":
    plan, _ = current_plan()
    print(f"load plan: {plan.reason}", file=sys.stderr)
    with model_params(plan.use_extra_bufts):  # the server loads its model at start-up, inside this block
        main()
