"""The viewer's pages, one module per page (each has ``register(source)``)."""
