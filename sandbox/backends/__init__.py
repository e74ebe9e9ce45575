"""Where the box lives. `base` is the contract; each other module is one backend."""
