"""MapReduce on the DFS (Dean & Ghemawat, OSDI 2004): a coordinator, a worker on every node, re-execution."""
