"""A pipeline written with the kfp SDK (``from kfp import dsl``), compiled by kfp's own
compiler and run by Shipyard without kfp installed:

    shipyard run examples/pipelines/kfp_hello.yaml -p name=Ada --watch

The compiled ``kfp_hello.yaml`` is committed beside this file. To compile it again (kfp
cannot share a venv with Shipyard's kubernetes pin, so the script uses a separate one):

    python scripts/gen-kfp-fixtures.py
    # or, in any venv with kfp 2.x:
    python -c "from kfp import compiler; import runpy; \
        compiler.Compiler().compile(runpy.run_path('kfp_hello.py')['hello'], 'kfp_hello.yaml')"
"""

from kfp import dsl


@dsl.component
def greet(name: str, times: int) -> str:
    return " ".join([f"hello {name}"] * times)


@dsl.component
def shout(text: str) -> str:
    print(text.upper())
    return text.upper()


@dsl.pipeline(name="kfp-hello", description="Two lightweight kfp components in a chain.")
def hello(name: str = "world", times: int = 2) -> str:
    g = greet(name=name, times=times)
    return shout(text=g.output).output
