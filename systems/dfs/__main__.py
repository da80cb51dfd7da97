"""`python -m systems.dfs --cluster FILE --id NODE`: run one DFS node (chunkserver, and master if it is the master)."""

from systems.dfs import BUGS, DEFAULT_OPTIONS, start_node
from systems.runtime.node_main import main

if __name__ == "__main__":
    main("dfs", start_node, bugs=BUGS, default_options=DEFAULT_OPTIONS)
