"""`python -m systems.heartbeat --cluster FILE --id NODE`: run one heartbeat node."""

from systems.heartbeat import BUGS, DEFAULT_OPTIONS, start_node
from systems.runtime.node_main import main

if __name__ == "__main__":
    main("heartbeat", start_node, bugs=BUGS, default_options=DEFAULT_OPTIONS)
