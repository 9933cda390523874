"""User-facing errors and the command-line wrapper that turns them into one line on stderr."""
import os
import sys
import traceback

import click


class ModmtError(Exception):
    """A failure the user can fix. Its message is one line that says what to do."""


def run_cli(command: click.Command, prog_name: str) -> None:
    """Run a click command: user errors become `prog: error: ...` and exit 2, never a traceback.

    `--debug` (anywhere on the command line) or MODMT_DEBUG=1 re-raises with the full traceback.
    """
    args = sys.argv[1:]
    debug = "--debug" in args or os.environ.get("MODMT_DEBUG") == "1"
    args = [a for a in args if a != "--debug"]
    try:
        command.main(args=args, prog_name=prog_name, standalone_mode=False)
    except click.exceptions.Exit as e:
        sys.exit(e.exit_code)
    except click.Abort:
        click.echo(f"{prog_name}: aborted", err=True)
        sys.exit(130)
    except click.ClickException as e:  # usage errors: click already words them for the user
        e.show()
        sys.exit(e.exit_code)
    except ModmtError as e:
        if debug:
            traceback.print_exc()
        click.echo(f"{prog_name}: error: {e}", err=True)
        sys.exit(2)
    except KeyboardInterrupt:
        click.echo(f"{prog_name}: interrupted", err=True)
        sys.exit(130)
    except Exception as e:  # a bug, not a user error: still one line unless --debug
        if debug:
            traceback.print_exc()
        click.echo(f"{prog_name}: unexpected error: {type(e).__name__}: {e} "
                   "(rerun with --debug for the traceback and report it)", err=True)
        sys.exit(1)
