"""`python -m systems.mapreduce --cluster FILE --id NODE`: run one MapReduce node (with its DFS roles)."""

from systems.mapreduce import BUGS, DEFAULT_OPTIONS, start_node
from systems.runtime.node_main import main

if __name__ == "__main__":
    main("mapreduce", start_node, bugs=BUGS, default_options=DEFAULT_OPTIONS)
