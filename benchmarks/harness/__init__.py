"""The benchmark harness behind `benchmarks/run.py`, one concern per module.

- `procs`: child processes (own process group, stopped on exit/signals), CPU and RSS
- `servers`: the fast fake API (nginx, else the aiohttp fallback)
- `data`: generated, cached input files
- `clients`: how each client is started and its run checked (`Run`, `Context`)
- `scenario_*`: one module per scenario, each with `run(ctx)` and `render(section)`
- `render`: tables, machine facts, results.json; `chart`: the PNG
- `baseline`: what the baseline scripts (`bare_aiohttp.py`, `seq_requests.py`) share
"""
