"""`python -m systems.kv --cluster FILE --id NODE`: run one KV node."""

from systems.kv import BUGS, DEFAULT_OPTIONS, start_node
from systems.runtime.node_main import main

if __name__ == "__main__":
    main("kv", start_node, bugs=BUGS, default_options=DEFAULT_OPTIONS)
