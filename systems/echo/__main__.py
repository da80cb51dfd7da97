"""`python -m systems.echo --cluster FILE --id NODE`: run one echo node."""

from systems.echo import BUGS, DEFAULT_OPTIONS, start_node
from systems.runtime.node_main import main

if __name__ == "__main__":
    main("echo", start_node, bugs=BUGS, default_options=DEFAULT_OPTIONS)
