"""ParallelFor + Collected: square each item (at most 3 at a time), then sum the squares.

shipyard run examples/pipelines/fan_out.py -p 'items=[1, 2, 3, 4]' --watch
"""

from shipyard import dsl


@dsl.component
def square(x: int) -> int:
    return x * x


@dsl.component
def total(values: list) -> int:
    return sum(values)


@dsl.pipeline(name="fan-out")
def fan_out(items: list = [1, 2, 3, 4, 5]) -> int:  # noqa: B006 - a pipeline default
    with dsl.ParallelFor(items, parallelism=3) as item:
        squared = square(x=item)
    return total(values=dsl.Collected(squared.output)).output
