"""One module per command; toolkit/cli.py registers them."""
