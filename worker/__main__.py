"""`python -m worker` is the same command as `cancel-worker`."""

from worker.cli import main

if __name__ == "__main__":
    main()
