from tui_composer.cli.app import main

main()
