"""doppel's core: domain types, ports and the reply pipeline. Imports no framework, engine or database."""
