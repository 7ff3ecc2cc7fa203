"""`python -m worker.sandbox [OPTIONS]`: the same command as `cancel-worker sandbox`."""

from worker.sandbox.cli import sandbox_command

if __name__ == "__main__":
    sandbox_command(prog_name="python -m worker.sandbox")
