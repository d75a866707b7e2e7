"""The population engine and everything that makes or varies genomes."""
