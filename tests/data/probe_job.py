"""A bounded job whose Python worker prints the interpreter it runs in (a test's probe)."""

import json
import sys

from pyflink.common import Types
from pyflink.datastream import StreamExecutionEnvironment


def interpreter(_: int) -> str:
    return "bethos-probe " + json.dumps({"prefix": sys.prefix, "path": sys.path})


if __name__ == "__main__":
    env = StreamExecutionEnvironment.get_execution_environment()
    env.from_collection([1]).map(interpreter, output_type=Types.STRING()).print()
    env.execute("probe")
