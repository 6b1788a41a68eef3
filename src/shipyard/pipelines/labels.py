"""Labels on pipeline runs that the platform sets and clients select by. A leaf module (no
imports), so that the client and the controllers share it without the client loading the
kinds' definitions."""

# kfp.Client's experiment (experiment_name / experiment_id) of a run or a RecurringRun.
EXPERIMENT_LABEL = "pipelines.shipyard.dev/experiment"
# The RecurringRun that started a run.
RECURRING_LABEL = "pipelines.shipyard.dev/recurring-run"
