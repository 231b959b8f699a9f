"""`python -m recur` runs the command-line tool."""

from recur.cli import main

main()
