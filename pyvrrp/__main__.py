from pyvrrp.cli.app import main

main()
