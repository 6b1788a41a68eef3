"""A pipeline task's entry point: ``python -m shipyard.pipelines.executor_main INPUT``.

The logic is in :mod:`shipyard.pipelines.executor`. This module stays this small because a
warm worker runs it afresh as ``__main__`` for every task (as ``python -m`` would), while the
executor it imports is preloaded once: running the executor's own body for each task (its
imports and definitions) cost a forked task half a millisecond.
"""

from shipyard.pipelines.executor import main

if __name__ == "__main__":
    main()
