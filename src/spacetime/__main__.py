from spacetime.cli import main

main()
