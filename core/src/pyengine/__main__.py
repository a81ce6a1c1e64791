"""``python -m pyengine ...`` runs the command-line client (and ``python -m pyengine daemon`` the daemon)."""

from pyengine.cli.main import main

if __name__ == "__main__":
    main()
