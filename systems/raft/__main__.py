"""`python -m systems.raft --cluster FILE --id NODE`: run one Raft KV node."""

from systems.raft import BUGS, DEFAULT_OPTIONS, start_node
from systems.runtime.node_main import main

if __name__ == "__main__":
    main("raft", start_node, bugs=BUGS, default_options=DEFAULT_OPTIONS)
