from setara.cli.main import main

main()
