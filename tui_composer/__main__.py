from tui_composer.cli import main

main()
