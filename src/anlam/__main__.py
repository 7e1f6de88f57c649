from anlam.cli import main

main()
