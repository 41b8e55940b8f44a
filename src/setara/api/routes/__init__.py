"""The API's routes, one APIRouter per area. Routes parse and authorise, then call the node's use
cases (in the writer thread) and views; they never build engine commands or read the engine."""
