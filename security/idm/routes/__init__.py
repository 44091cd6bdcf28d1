"""The identity manager's HTTP routes, one module per group of Keyrock's API."""
