from pyengine.supervisor.server import main

main()
