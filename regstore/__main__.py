from regstore.cli import run

run()
