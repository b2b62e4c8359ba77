from retreasure.cli import app

app(prog_name="retreasure")
