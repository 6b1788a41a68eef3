"""A TFJob replica that checks TF_CONFIG the way TensorFlow's cluster resolver reads it.

Every task binds its own address from the cluster spec (so addresses are real and distinct),
then connects to every other task's address until all answer: the job succeeds only if the
cluster Kubeflow described is one every task can reach.
"""

from __future__ import annotations

import json
import os
import socket
import sys
import threading
import time


def main() -> int:
    config = json.loads(os.environ["TF_CONFIG"])
    cluster, task = config["cluster"], config["task"]
    assert config["environment"] == "cloud", config
    me = cluster[task["type"]][task["index"]]
    expected = os.environ["HOSTNAME"].rsplit("-", 2)[-2:]  # <job>-<type>-<index>
    if [task["type"], str(task["index"])] != expected:
        print(f"error: task {task} does not match pod {os.environ['HOSTNAME']}", file=sys.stderr)
        return 1
    addrs = [a for members in cluster.values() for a in members]
    if len(set(addrs)) != len(addrs):
        print(f"error: addresses are not distinct: {addrs}", file=sys.stderr)
        return 1
    host, port = me.rsplit(":", 1)
    server = socket.create_server((host, int(port)))
    server.settimeout(30)

    def serve() -> None:
        # accept connections until the others have been reached (daemon thread)
        while True:
            try:
                conn, _ = server.accept()
                conn.close()
            except OSError:
                return

    threading.Thread(target=serve, daemon=True).start()
    deadline = time.monotonic() + 60
    for addr in addrs:
        h, p = addr.rsplit(":", 1)
        while True:
            try:
                socket.create_connection((h, int(p)), timeout=2).close()
                break
            except OSError:
                if time.monotonic() > deadline:
                    print(f"error: cannot reach {addr}", file=sys.stderr)
                    return 1
                time.sleep(0.1)
    print(f"task {task['type']}:{task['index']} at {me} reached {len(addrs)} tasks")
    time.sleep(1.0)  # let slower peers reach this task's address
    return 0


if __name__ == "__main__":
    sys.exit(main())
