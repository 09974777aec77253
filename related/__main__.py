from related.cli import main

main()
