from clconv.cli import main

main()
