"""ExitHandler: `cleanup` runs after the guarded tasks whether they succeed or fail, and
is told how they ended.

    shipyard run examples/pipelines/exit_handler.py -p fail=true --watch
"""

from shipyard import dsl
from shipyard.dsl import PipelineTaskFinalStatus


@dsl.component
def work(fail: bool) -> str:
    if fail:
        raise RuntimeError("work failed on purpose")
    return "done"


@dsl.component
def cleanup(status: PipelineTaskFinalStatus) -> str:
    print(f"cleanup: guarded tasks ended {status.state} {status.error_message or ''}")
    return status.state


@dsl.pipeline(name="exit-handler")
def exit_handler(fail: bool = False):
    final = cleanup()
    with dsl.ExitHandler(exit_task=final):
        work(fail=fail)
